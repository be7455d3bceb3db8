/**
 * Durable checkpoint state of one pipeline, in `<data_dir>/state/<pipeline>.json`. Written atomically
 * (temp file, fsync, rename, fsync of the directory) so a crash leaves the old or the new state, never half.
 *
 * A checkpoint is two-phase: `pending` is recorded before sinks commit in their own storage, `committed`
 * after. A rerun that finds `pending` asks transactional sinks which of the two they committed.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeFileSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { EtlError } from '../errors.ts';
import type { DeadLetter } from '../record.ts';
import type { KeyedRecord } from './keyed.ts';

/** Up to this much JSON, `save` writes without awaiting (see there). */
const SYNC_SAVE_MAX_CHARS = 256 * 1024;

export interface CheckpointRecord {
  readonly id: number;
  readonly time: string;
  /** Resume positions by source id. */
  readonly positions: Record<string, unknown>;
  /** State reported by sinks at `prepareCommit`, by sink id. */
  readonly sinks: Record<string, unknown>;
  /** State of stateful transforms, by stage id. */
  readonly transforms: Record<string, unknown>;
  /**
   * `kind:type` of every stage whose state this checkpoint holds or that commits in its own storage (sources,
   * sinks, transforms with a snapshot), to tell on a rerun whether the pipeline still fits (state/fit.ts).
   * Absent in checkpoints written before it existed.
   */
  readonly stages?: Record<string, string>;
  /**
   * A digest of every stage as declared (state/fit.ts `stageFingerprints`), to tell on a rerun what was edited since
   * this checkpoint. Absent in checkpoints written before it existed.
   */
  readonly fingerprints?: Record<string, string>;
  /** The log generation of each keyed state map (state/keyed.ts), by `<stage>.<name>`. */
  readonly keyed?: KeyedRecord;
  /**
   * Dead letters sinks found at this checkpoint's phase one (records refused when made durable), by sink
   * id: sent on the sink's `dead_letter` port once the checkpoint committed, and again by a rerun from it.
   */
  readonly late?: Record<string, DeadLetter[]>;
}

export interface PipelineState {
  readonly version: 1;
  readonly pipeline: string;
  readonly committed?: CheckpointRecord;
  readonly pending?: CheckpointRecord;
}

export class StateStore {
  readonly path: string;
  private readonly pipeline: string;

  constructor(dataDir: string, pipeline: string) {
    this.pipeline = pipeline;
    this.path = join(dataDir, 'state', `${pipeline}.json`);
  }

  async load(): Promise<PipelineState | undefined> {
    await this.removeStaleTemps();
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new EtlError('ETL_STATE_IO', `cannot read checkpoint state ${this.path}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    try {
      const state = JSON.parse(text) as PipelineState;
      if (state.version !== 1) throw new Error(`unsupported state version ${String(state.version)}`);
      return state;
    } catch (error) {
      throw new EtlError(
        'ETL_STATE_CORRUPT',
        `checkpoint state ${this.path} is unreadable (${(error as Error).message}); move it away to start over`,
        { cause: error },
      );
    }
  }

  /**
   * Temporary files of saves a killed process did not finish (`<name>.json.<pid>.tmp`): never read, they would
   * pile up with every SIGKILL. Only those of processes no longer running, so a run that shares nothing is safe.
   */
  private async removeStaleTemps(): Promise<void> {
    const dir = dirname(this.path);
    const prefix = `${basename(this.path)}.`;
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const pid = name.startsWith(prefix) ? /^(\d+)\.tmp$/.exec(name.slice(prefix.length))?.[1] : undefined;
      if (pid === undefined || Number(pid) === process.pid || isRunning(Number(pid))) continue;
      await unlink(join(dir, name)).catch(() => {});
    }
  }

  /** Moves the state file aside (`<name>.json.reset-<time>`), for `--reset`; the path it went to, if any. */
  async setAside(now = new Date()): Promise<string | undefined> {
    const aside = `${this.path}.reset-${now.toISOString().replaceAll(':', '')}`;
    try {
      await rename(this.path, aside);
      return aside;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new EtlError('ETL_STATE_IO', `cannot move ${this.path} aside: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  /**
   * A small state (positions, sink states) is written synchronously. A checkpoint saves twice (pending, then
   * committed), and each await of a file operation resumes only once the event loop comes round again, behind
   * the batches it is running: with 5 ms of work per turn, the nine awaits of a save took 71–136 ms (median)
   * where the same writes and fsyncs done synchronously took 7–15 ms, blocking for that long (bench/state-save.ts,
   * load average 11–14). A large state (transform state kept inline) is still written with awaits: blocking on
   * its fsync would stall the pipeline.
   */
  async save(state: Omit<PipelineState, 'version' | 'pipeline'>): Promise<void> {
    const full: PipelineState = { version: 1, pipeline: this.pipeline, ...state };
    const text = JSON.stringify(full);
    const dir = dirname(this.path);
    const tmp = `${this.path}.${process.pid}.tmp`;
    try {
      if (text.length <= SYNC_SAVE_MAX_CHARS) {
        mkdirSync(dir, { recursive: true });
        writeFileSync(tmp, text, { flush: true });
        renameSync(tmp, this.path);
        const dirFd = openSync(dir, 'r');
        try {
          fsyncSync(dirFd);
        } finally {
          closeSync(dirFd);
        }
        return;
      }
      await mkdir(dir, { recursive: true });
      const handle = await open(tmp, 'w');
      try {
        await handle.writeFile(text);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, this.path);
      const dirHandle = await open(dir, 'r');
      try {
        await dirHandle.sync();
      } finally {
        await dirHandle.close();
      }
    } catch (error) {
      // A full disk fails the write midway: no half-written temporary file is left behind.
      await unlink(tmp).catch(() => {});
      throw new EtlError('ETL_STATE_IO', `cannot write checkpoint state ${this.path}: ${(error as Error).message}`, {
        cause: error,
        retriable: true,
      });
    }
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
