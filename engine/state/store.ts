/**
 * Durable checkpoint state of one pipeline, in `<data_dir>/state/<pipeline>.json`. Written atomically
 * (temp file, fsync, rename, fsync of the directory) so a crash leaves the old or the new state, never half.
 *
 * A checkpoint is two-phase: `pending` is recorded before sinks commit in their own storage, `committed`
 * after. A rerun that finds `pending` asks transactional sinks which of the two they committed.
 */
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { EtlError } from '../errors.ts';
import type { DeadLetter } from '../record.ts';
import type { KeyedRecord } from './keyed.ts';

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

  async save(state: Omit<PipelineState, 'version' | 'pipeline'>): Promise<void> {
    const full: PipelineState = { version: 1, pipeline: this.pipeline, ...state };
    const dir = dirname(this.path);
    await mkdir(dir, { recursive: true });
    const tmp = `${this.path}.${process.pid}.tmp`;
    try {
      const handle = await open(tmp, 'w');
      try {
        await handle.writeFile(JSON.stringify(full));
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
