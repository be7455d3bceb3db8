/**
 * Change notifications for the follow loop: one fs.watch per directory (inotify on Linux: one watch per
 * directory, whatever the number of files in it), noting which names changed. They tell the loop what to
 * look at, so idle files cost nothing. Notifications can be missing (network file systems, an overflowing
 * kernel queue, a watch refused at the inotify limit), so the loop also checks files at a slow pace, and every
 * file of a directory that could not be watched at each poll.
 */
import { type FSWatcher, watch } from 'node:fs';
import { join } from 'node:path';

export interface DirectoryEvents {
  /** Paths whose content changed. */
  readonly changed: Set<string>;
  /** Paths created, deleted or renamed (from or to). */
  readonly renamed: Set<string>;
  /** Directories that reported a change without a name: anything in them may have changed. */
  readonly unnamed: Set<string>;
}

const none = (): DirectoryEvents => ({ changed: new Set(), renamed: new Set(), unnamed: new Set() });

export class DirectoryWatcher {
  private readonly watchers = new Map<string, FSWatcher>();
  private events = none();
  private pending = false;
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
        const watcher = watch(dir, { persistent: false }, (event, name) => this.note(dir, event, name));
        watcher.on('error', () => {
          watcher.close();
          this.watchers.delete(dir);
          // Everything in it may have changed unseen; the next rescan tries to watch it again.
          this.events.unnamed.add(dir);
          this.wake();
        });
        this.watchers.set(dir, watcher);
      } catch {
        // Missing, unwatchable, or over the inotify limit: its files are checked at every poll instead.
      }
    }
  }

  /** Whether changes in `dir` are notified (else its files must be polled). */
  watching(dir: string): boolean {
    return this.watchers.has(dir);
  }

  /** The events since the last call. */
  take(): DirectoryEvents {
    const events = this.events;
    this.events = none();
    return events;
  }

  /** Resolves on an event since the last wait, after `ms`, or when `signal` aborts. */
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

  private note(dir: string, event: string, name: string | null): void {
    if (name === null) this.events.unnamed.add(dir);
    else (event === 'rename' ? this.events.renamed : this.events.changed).add(join(dir, name));
    this.wake();
  }

  private wake(): void {
    this.pending = true;
    const wakeUp = this.wakeUp;
    this.wakeUp = null;
    wakeUp?.();
  }
}
