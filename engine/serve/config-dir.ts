/**
 * GitOps: the pipelines of a directory, kept running as its files say. A file added, changed or removed
 * starts, reloads or stops its pipelines; a file saved without a change does nothing. Changes are noticed
 * by a file system watch and, in case a watch misses one (network file systems, a checkout replacing the
 * directory), by a full rescan every `rescanIntervalMs`. Scans never overlap: a change noticed during one
 * brings another right after it.
 */
import { createHash } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Diagnostic } from '../diagnostics.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../operator.ts';
import type { ApplyOutcome, Supervisor } from './supervisor.ts';

/** How a pipeline document starts (as the loader tells pipelines from other YAML in a directory). */
const PIPELINE_MARK = /^\s*apiVersion:\s*["']?etl\//m;
const YAML_FILE = /\.ya?ml$/i;
/** Editors write a file in several steps: changes this close together are one. */
const SETTLE_MS = 100;
/** A file still changing after this many reads is taken as it is then (the next change brings another scan). */
const MAX_SETTLE_TRIES = 20;

export interface FileState {
  /** Relative to the directory. */
  readonly file: string;
  readonly hash: string;
  readonly valid: boolean;
  readonly pipelines: readonly string[];
  readonly diagnostics: readonly Diagnostic[];
  readonly appliedAt: string;
}

export interface ConfigDirOptions {
  readonly dir: string;
  readonly supervisor: Supervisor;
  readonly logger: Logger;
  readonly rescanIntervalMs?: number;
}

export class ConfigDir {
  private readonly options: ConfigDirOptions;
  private readonly files = new Map<string, FileState>();
  /** One watch per directory: Node's recursive watch on Linux misses a file replaced twice (`sed -i`). */
  private readonly watchers = new Map<string, FSWatcher>();
  private timer: NodeJS.Timeout | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private pending = false;
  private closed = false;
  /** Completed scans, for tests and the API. */
  scans = 0;

  constructor(options: ConfigDirOptions) {
    this.options = options;
  }

  /** The first scan (every pipeline of the directory started), then watching. */
  async start(): Promise<void> {
    await this.scan();
    this.timer = setInterval(() => void this.scan(), this.options.rescanIntervalMs ?? 5000);
    this.timer.unref();
  }

  state(): FileState[] {
    return [...this.files.values()].sort((a, b) => a.file.localeCompare(b.file));
  }

  /** Scans now (or right after the scan under way); resolves when that scan is over. */
  scan(): Promise<void> {
    this.pending = true;
    this.scanning ??= (async () => {
      try {
        while (this.pending && !this.closed) {
          this.pending = false;
          await this.scanOnce().catch((error: unknown) =>
            this.options.logger.error(`scanning ${this.options.dir} failed: ${errorMessage(error)}`),
          );
          this.scans++;
        }
      } finally {
        this.scanning = undefined;
      }
    })();
    return this.scanning;
  }

  /** Stops watching; the pipelines keep running (the supervisor's shutdown stops them). */
  async close(): Promise<void> {
    this.closed = true;
    for (const watcher of this.watchers.values()) watcher.close();
    this.watchers.clear();
    if (this.timer) clearInterval(this.timer);
    if (this.settleTimer) clearTimeout(this.settleTimer);
    await this.scanning;
  }

  private changed(): void {
    if (this.closed) return;
    if (this.settleTimer) clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => {
      this.settleTimer = undefined;
      void this.scan();
    }, SETTLE_MS);
  }

  private async scanOnce(): Promise<void> {
    const texts = new Map<string, string>();
    const dirs = [''];
    const files = await yamlFiles(this.options.dir, '', dirs);
    this.watchDirectories(dirs);
    for (const file of files) {
      const text = await this.read(file);
      // A file of ours stays ours whatever it holds now (half written, emptied): its change is judged, and
      // refused if it is no pipeline, rather than taken for a removal that would stop its pipelines.
      if (text !== undefined && (this.files.has(file) || PIPELINE_MARK.test(text))) texts.set(file, text);
    }
    // Removals first: a pipeline moved to another file stops here and starts from there, from its checkpoint.
    let removed = false;
    for (const file of [...this.files.keys()]) {
      if (texts.has(file)) continue;
      removed = true;
      this.files.delete(file);
      const names = this.options.supervisor.ownedBy(ownerOf(file));
      if (names.length > 0) this.options.logger.info(`${file} removed: stopping ${names.join(', ')}`);
      await Promise.all(names.map((name) => this.options.supervisor.remove(name)));
    }
    // A file refused because another one held its pipeline's name is tried again once that one has gone.
    if (removed) for (const [file, state] of this.files) if (!state.valid) this.files.set(file, { ...state, hash: '' });
    for (const [file, first] of texts) {
      if (this.files.get(file)?.hash === hashOf(first)) continue;
      // Changed: taken once it holds still, so that a file caught while an editor writes it is not judged half done.
      const text = await this.settled(file, first);
      if (text === undefined) continue; // gone meanwhile: the next scan removes it
      const hash = hashOf(text);
      if (this.files.get(file)?.hash === hash) continue;
      const outcome = await this.options.supervisor.apply(text, join(this.options.dir, file), ownerOf(file), {
        prune: true,
      });
      this.record(file, hash, outcome);
    }
  }

  private async read(file: string): Promise<string | undefined> {
    try {
      return await readFile(join(this.options.dir, file), 'utf8');
    } catch {
      return undefined; // removed since it was listed
    }
  }

  /** The file's text once two reads `SETTLE_MS` apart agree (at most a few tries), or undefined once it is gone. */
  private async settled(file: string, text: string): Promise<string | undefined> {
    let last: string | undefined = text;
    for (let attempt = 0; attempt < MAX_SETTLE_TRIES && last !== undefined; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
      const again = await this.read(file);
      if (again === last) return again;
      last = again;
    }
    return last;
  }

  /** Watches the directories found by the scan, and stops watching those gone. */
  private watchDirectories(dirs: readonly string[]): void {
    if (this.closed) return;
    for (const [dir, watcher] of this.watchers) {
      if (dirs.includes(dir)) continue;
      watcher.close();
      this.watchers.delete(dir);
    }
    for (const dir of dirs) {
      if (this.watchers.has(dir)) continue;
      try {
        const watcher = watch(join(this.options.dir, dir), () => this.changed());
        watcher.on('error', () => {
          // Gone (or unwatchable): the rescans carry on, and watch it again if it comes back.
          watcher.close();
          this.watchers.delete(dir);
        });
        this.watchers.set(dir, watcher);
      } catch (error) {
        this.options.logger.warn(
          `cannot watch ${join(this.options.dir, dir)}, rescanning only: ${errorMessage(error)}`,
        );
      }
    }
  }

  private record(file: string, hash: string, outcome: ApplyOutcome): void {
    this.files.set(file, {
      file,
      hash,
      valid: outcome.valid && outcome.pipelines.every((p) => p.action !== 'refused'),
      pipelines: outcome.pipelines.map((p) => p.name),
      diagnostics: outcome.diagnostics,
      appliedAt: new Date().toISOString(),
    });
  }
}

function hashOf(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export function ownerOf(file: string): string {
  return `file:${file}`;
}

/**
 * `*.yaml` / `*.yml` below `dir`, relative to it, sorted; hidden folders and node_modules are not entered.
 * The folders entered are added to `dirs`.
 */
async function yamlFiles(dir: string, prefix: string, dirs: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(dir, prefix), { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory() && entry.name !== 'node_modules') {
      dirs.push(path);
      out.push(...(await yamlFiles(dir, path, dirs)));
    } else if (entry.isFile() && YAML_FILE.test(entry.name)) out.push(path);
  }
  return out.sort();
}
