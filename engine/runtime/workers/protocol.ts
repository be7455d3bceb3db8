/** The messages between the main thread and the worker threads of a chain of stateless stages (pool.ts, worker.ts). */
import type { RecordSchema } from '../../record-schema.ts';
import type { EncodedBatch, EncodedPorts } from './codec.ts';

/** One stage of the chain a worker runs, as the worker creates it. */
export interface ChainStage {
  readonly id: string;
  readonly type: string;
  readonly options: Readonly<Record<string, unknown>>;
  readonly readPorts: readonly string[];
  readonly inputSchema?: RecordSchema;
}

export interface WorkerInit {
  readonly pipeline: string;
  readonly dataDir: string;
  readonly baseDir: string;
  /** Modules (URLs) whose exports include operator definitions the registry lacks (`RunOptions.operatorModules`). */
  readonly operatorModules: readonly string[];
  /** In order: each stage after the first takes the `default` records of the one before. */
  readonly stages: readonly ChainStage[];
}

/** A log line or a metric change of stage `stage` (its index in the chain), replayed on the main thread. */
export type Note =
  | {
      readonly stage: number;
      readonly log: 'debug' | 'info' | 'warn' | 'error';
      readonly message: string;
      readonly fields?: Record<string, unknown>;
    }
  | {
      readonly stage: number;
      readonly metric: 'counter' | 'gauge';
      readonly name: string;
      readonly help: string;
      readonly labels?: Record<string, string>;
      readonly value: number;
    };

export type Request =
  | { readonly type: 'batch'; readonly id: number; readonly batch: EncodedBatch }
  | { readonly type: 'close' };

/** What one stage of the chain made of its input: its ports but `default` (which the next stage took), or all. */
export interface StageOutcome {
  readonly ports: EncodedPorts;
  /** Records the stage passed on to the next one (its `default` port); 0 ends the chain for this batch. */
  readonly passed: number;
  /**
   * The next stage threw: the records it was given (on `default`) and the error, for the main thread to apply that
   * stage's `on_error` to them.
   */
  readonly failed?: { readonly input: EncodedPorts; readonly error: ErrorInfo };
}

export interface ErrorInfo {
  readonly message: string;
  readonly code?: string;
  readonly retriable?: boolean;
}

export type Reply =
  | { readonly type: 'ready'; readonly notes: Note[] }
  | { readonly type: 'open-failed'; readonly stage: number; readonly error: ErrorInfo; readonly notes: Note[] }
  | { readonly type: 'result'; readonly id: number; readonly stages: StageOutcome[]; readonly notes: Note[] }
  | { readonly type: 'failed'; readonly id: number; readonly error: ErrorInfo; readonly notes: Note[] }
  | { readonly type: 'notes'; readonly notes: Note[] }
  | { readonly type: 'closed'; readonly notes: Note[] };
