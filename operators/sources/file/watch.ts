/**
 * Wakes the follow loop early when a watched directory changes. fs.watch is only a latency
 * optimisation: it misses events on some file systems (NFS, overlay, editors that swap files), so the
 * loop also polls, and a watcher that fails is simply dropped.
 */
import { type FSWatcher, watch } from 'node:fs';

export class Waker {
  private readonly watchers = new Map<string, FSWatcher>();
  private pending = false;
  /** A name appeared or disappeared in a watched directory since the last `takeRescan`. */
  private renamed = false;
  private wakeUp: (() => void) | null = null;
  private closed = false;

  /** Watches exactly `dirs` from now on (new ones added, others closed). */
  watch(dirs: Iterable<string>): void {
    if (this.closed) return;
    const wanted = new Set(dirs);
    for (const [dir, watcher] of this.watchers) {
      if (!wanted.has(dir)) {
        watcher.close();
        this.watchers.delete(dir);
      }
    }
    for (const dir of wanted) {
      if (this.watchers.has(dir)) continue;
      try {
        const watcher = watch(dir, { persistent: false }, (event) => {
          if (event === 'rename') this.renamed = true;
          this.wake();
        });
        watcher.on('error', () => {
          watcher.close();
          this.watchers.delete(dir);
        });
        this.watchers.set(dir, watcher);
      } catch {
        // Missing or unwatchable directory: polling covers it, and the next rescan tries again.
      }
    }
  }

  /** True once after files were created, renamed or deleted in a watched directory. */
  takeRescan(): boolean {
    const renamed = this.renamed;
    this.renamed = false;
    return renamed;
  }

  wake(): void {
    this.pending = true;
    const wakeUp = this.wakeUp;
    this.wakeUp = null;
    wakeUp?.();
  }

  /** Resolves on a change since the last wait, after `ms`, or when `signal` aborts. */
  wait(ms: number, signal: AbortSignal): Promise<void> {
    if (this.pending || signal.aborted || ms <= 0) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.wakeUp = null;
        this.pending = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.wakeUp = done;
    });
  }

  close(): void {
    this.closed = true;
    for (const watcher of this.watchers.values()) watcher.close();
    this.watchers.clear();
    this.wake();
  }
}
