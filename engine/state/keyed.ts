/**
 * Keyed operator state (`ctx.keyed(name)`), checkpointed incrementally.
 *
 * Each map has an append-only log beside the state file, `<data_dir>/state/<pipeline>/<stage>.<name>.<gen>.log`,
 * one JSON line per change: `[snapshot, key, value]`, or `[snapshot, key]` for a removal. At a checkpoint the
 * keys changed since the previous one are appended, tagged with its snapshot id, and fsynced in phase one;
 * so a checkpoint costs what changed, not what is held. A rerun replays the lines of snapshots up to the one
 * it resumes from and cuts the file there: lines of a checkpoint that never committed, and a line torn by a
 * crash, go. When a log holds more than twice as many lines as the map has entries, the checkpoint writes the whole map
 * to the next generation instead; the checkpoint record names the generation, and the older one is removed
 * once a checkpoint naming the newer one has committed.
 */
import { mkdir, open, readdir, readFile, rm, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { EtlError } from '../errors.ts';
import type { KeyedState } from '../operator.ts';

/**
 * What a checkpoint records of each map, by `<stage>.<name>`: its log file (in `<data_dir>/state/<pipeline>/`)
 * and generation. The file is named, not derived from the stage id, so that a stage renamed with `--rename`
 * keeps its state.
 */
export type KeyedRecord = Record<string, { readonly file: string; readonly generation: number }>;

const REMOVED: unique symbol = Symbol('removed');
/** Logs smaller than this are never compacted: rewriting costs more than the lines it saves. */
const COMPACT_MIN_BYTES = 1 << 20;

class KeyedMap<V> implements KeyedState<V> {
  readonly values = new Map<string, V>();
  /** Keys changed since the last checkpoint, with their new value or REMOVED. */
  changed = new Map<string, V | typeof REMOVED>();

  get(key: string): V | undefined {
    return this.values.get(key);
  }
  has(key: string): boolean {
    return this.values.has(key);
  }
  set(key: string, value: V): void {
    this.values.set(key, value);
    this.changed.set(key, value);
  }
  delete(key: string): boolean {
    const had = this.values.delete(key);
    if (had) this.changed.set(key, REMOVED);
    return had;
  }
  get size(): number {
    return this.values.size;
  }
  keys(): IterableIterator<string> {
    return this.values.keys();
  }
  entries(): IterableIterator<[string, V]> {
    return this.values.entries();
  }
}

interface Log {
  readonly id: string;
  readonly map: KeyedMap<unknown>;
  generation: number;
  /** Log file of the current generation, in the backend's directory. */
  file: string;
  /** Bytes in the log file of the current generation. */
  bytes: number;
  /**
   * Lines in the log file of the current generation. A compacted log holds one per entry: past twice that, the
   * log is compacted. Counted rather than summing each live entry's bytes, which took a third map keyed by the
   * same long keys, updated for every changed key at every checkpoint.
   */
  lines: number;
  /** Generations older than the current one, removable once a checkpoint naming a newer one has committed. */
  retired: Array<{ readonly generation: number; readonly file: string }>;
}

export class KeyedStateBackend {
  private readonly dir: string;
  private readonly logs = new Map<string, Log>();
  /** Generations named by the checkpoint being taken, by log id, to retire older ones once it commits. */
  private readonly pendingGenerations = new Map<number, Map<string, number>>();

  constructor(dataDir: string, pipeline: string) {
    this.dir = join(dataDir, 'state', pipeline);
  }

  /** The map `name` of stage `stage`, empty until `restore`. */
  map<V>(stage: string, name: string): KeyedState<V> {
    if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error(`keyed state name ${JSON.stringify(name)}: use [A-Za-z0-9_-]`);
    const id = `${stage}.${name}`;
    if (this.logs.has(id)) throw new Error(`stage ${stage} asked twice for keyed state ${name}`);
    const map = new KeyedMap<V>();
    this.logs.set(id, {
      id,
      map: map as KeyedMap<unknown>,
      generation: 1,
      file: `${id}.1.log`,
      bytes: 0,
      lines: 0,
      retired: [],
    });
    return map;
  }

  /** Fills every map as the checkpoint `snapshotId` left it (empty on a first run), and cuts the logs there. */
  async restore(record: KeyedRecord | undefined, snapshotId: number | undefined): Promise<void> {
    if (this.logs.size === 0) return;
    for (const log of this.logs.values()) {
      const saved = record?.[log.id];
      log.generation = saved?.generation ?? 1;
      log.file = saved?.file ?? `${log.id}.1.log`;
      log.map.values.clear();
      log.map.changed.clear();
      log.lines = 0;
      log.bytes = saved === undefined || snapshotId === undefined ? 0 : await this.replay(log, snapshotId);
      if (saved === undefined) await rm(join(this.dir, log.file), { force: true });
      // Other generations belong to checkpoints that never committed, or were retired.
      await this.removeGenerations(log.id, (file) => file !== log.file);
    }
  }

  /**
   * At the cut of checkpoint `snapshotId`, while the pipeline is drained: takes each map's changes (a swap),
   * or past the compaction threshold a copy of the whole map, so processing goes on at once; the promise
   * turns them into log lines in slices (yielding between them), appends them (or writes the next
   * generation), fsyncs, and gives what the checkpoint must record.
   */
  prepare(snapshotId: number): Promise<KeyedRecord | undefined> {
    if (this.logs.size === 0) return Promise.resolve(undefined);
    const record: KeyedRecord = {};
    const generations = new Map<string, number>();
    const writes: Array<() => Promise<void>> = [];
    for (const log of this.logs.values()) {
      if (log.map.changed.size > 0) writes.push(this.takeChanges(log, snapshotId));
      record[log.id] = { file: log.file, generation: log.generation };
      generations.set(log.id, log.generation);
    }
    this.pendingGenerations.set(snapshotId, generations);
    return (async () => {
      // Not a line before the pipeline has resumed: the caller is at the cut, with every source paused.
      await new Promise((resolve) => setImmediate(resolve));
      for (const write of writes) await write();
      return record;
    })();
  }

  /** Checkpoint `snapshotId` has committed: generations it no longer names can go. */
  async committed(snapshotId: number): Promise<void> {
    const generations = this.pendingGenerations.get(snapshotId);
    for (const id of this.pendingGenerations.keys()) if (id <= snapshotId) this.pendingGenerations.delete(id);
    if (!generations) return;
    for (const [id, generation] of generations) {
      const log = this.logs.get(id) as Log;
      const older = log.retired.filter((r) => r.generation < generation);
      log.retired = log.retired.filter((r) => r.generation >= generation);
      for (const r of older) await rm(join(this.dir, r.file), { force: true });
    }
  }

  /** Applies the lines of snapshots up to `snapshotId`; the file is cut after the last of them. */
  private async replay(log: Log, snapshotId: number): Promise<number> {
    const path = join(this.dir, log.file);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw error;
    }
    let kept = 0;
    let at = 0;
    while (at < text.length) {
      const end = text.indexOf('\n', at);
      if (end < 0) break; // a line torn by a crash: never part of a committed checkpoint
      const line = text.slice(at, end);
      let entry: unknown[];
      try {
        entry = JSON.parse(line) as unknown[];
      } catch (error) {
        throw new EtlError(
          'ETL_STATE_CORRUPT',
          `keyed state ${path}: unreadable line at byte ${at}: ${line.slice(0, 80)}`,
          {
            cause: error,
          },
        );
      }
      if ((entry[0] as number) > snapshotId) break;
      const key = entry[1] as string;
      if (entry.length > 2) log.map.values.set(key, entry[2]);
      else log.map.values.delete(key);
      at = end + 1;
      kept += Buffer.byteLength(line) + 1;
      log.lines++;
    }
    if (Buffer.byteLength(text) > kept) await truncate(path, kept);
    return kept;
  }

  /**
   * Takes `log`'s changes for `snapshotId` now; the function writes them later. Past twice as many lines as entries (and
   * the minimum), the whole map goes to the next generation instead: a copy of it is taken now.
   */
  private takeChanges(log: Log, snapshotId: number): () => Promise<void> {
    const changes = log.map.changed;
    log.map.changed = new Map();
    if (log.bytes <= COMPACT_MIN_BYTES || log.lines <= 2 * log.map.values.size) {
      const path = join(this.dir, log.file);
      return async () => {
        const lines = await inSlices(changes, ([key, value]) =>
          value === REMOVED ? JSON.stringify([snapshotId, key]) : JSON.stringify([snapshotId, key, value]),
        );
        log.bytes += await this.write(path, lines, 'a');
        log.lines += lines.length;
      };
    }
    // Compact: the whole map, as of this snapshot, in the next generation.
    log.retired.push({ generation: log.generation, file: log.file });
    log.generation++;
    log.file = `${log.id}.${log.generation}.log`;
    const path = join(this.dir, log.file);
    const entries = [...log.map.values];
    return async () => {
      const lines = await inSlices(entries, ([key, value]) => JSON.stringify([snapshotId, key, value]));
      log.bytes = await this.write(path, lines, 'w');
      log.lines = lines.length;
    };
  }

  /** Writes the lines and fsyncs them; a new file's directory entry too. The bytes written. */
  private async write(path: string, lines: readonly string[], flags: 'a' | 'w'): Promise<number> {
    await mkdir(this.dir, { recursive: true });
    const handle = await open(path, flags);
    let bytes = 0;
    let created: boolean;
    try {
      created = (await handle.stat()).size === 0;
      // In slices: one string of a million lines would be larger than V8 allows.
      for (let i = 0; i < lines.length; i += 10_000) {
        const chunk = `${lines.slice(i, i + 10_000).join('\n')}\n`;
        await handle.writeFile(chunk);
        bytes += Buffer.byteLength(chunk);
      }
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (created) {
      const dir = await open(this.dir, 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    }
    return bytes;
  }

  /** Removes the log files of map `id` that `remove` names (by file name). */
  private async removeGenerations(id: string, remove: (file: string) => boolean): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (name.startsWith(`${id}.`) && /\.\d+\.log$/.test(name) && remove(name)) {
        await rm(join(this.dir, name), { force: true });
      }
    }
  }

  /** Stage ids that keep keyed state. */
  stages(): Set<string> {
    return new Set([...this.logs.keys()].map((id) => id.slice(0, id.lastIndexOf('.'))));
  }
}

/** Maps `items` in slices of 10,000, giving the event loop a turn between them: a million lines take seconds. */
async function inSlices<T>(items: Iterable<T>, fn: (item: T) => string): Promise<string[]> {
  const out: string[] = [];
  for (const item of items) {
    out.push(fn(item));
    if (out.length % 10_000 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  return out;
}
