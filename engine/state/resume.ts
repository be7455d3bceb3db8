/**
 * Which checkpoint a run resumes from, given the state directory and what the sinks that commit in their
 * own storage (a table's `etl_checkpoints` row) recorded with their data.
 *
 * The state directory decides, as long as no sink is ahead of it. When it holds nothing (removed, or a
 * container without a persistent `data_dir`) or is older than the sinks' data (restored from a backup), the
 * sinks' own records decide: the run resumes from the positions they committed if they all name the same
 * checkpoint and no other stage's state lived only in the state directory. Anything else is refused; reading
 * from the start would load again what the sinks hold.
 */
import { EtlError } from '../errors.ts';
import type { CommittedCheckpoint } from '../operator.ts';
import type { CheckpointRecord, PipelineState } from './store.ts';

export interface ResumeInputs {
  readonly pipeline: string;
  /** The state, already fitted to the pipeline; undefined when there is none (or `--reset` set it aside). */
  readonly state: PipelineState | undefined;
  /** Sinks that commit in their own storage, with what each recorded (undefined: nothing yet). */
  readonly sinkRecords: ReadonlyArray<{ readonly sink: string; readonly committed: CommittedCheckpoint | undefined }>;
  /** Stages whose state lives only in the state directory: committing sinks without a record of their own, stateful transforms. */
  readonly stateOnlyHere: readonly string[];
  /** Stages the user allowed to start without their state (`--forget`). */
  readonly forget: readonly string[];
  /** `--reset`: start over, whatever the sinks hold. */
  readonly reset: boolean;
}

export interface ResumeDecision {
  readonly resumeFrom: CheckpointRecord | undefined;
  /** The state file must be rewritten to `{ committed: resumeFrom }`. */
  readonly save: boolean;
  /** Snapshot ids this run must stay above (its own and the sinks'). */
  readonly lastId: number;
  readonly warnings: readonly string[];
}

const HOW_TO_START_OVER =
  'pass --reset to start over (every source reads from the start, and what the sinks hold is loaded again)';

export function decideResume(input: ResumeInputs): ResumeDecision {
  const { state, sinkRecords } = input;
  const stateIds = [state?.committed?.id ?? 0, state?.pending?.id ?? 0];
  const sinkIds = sinkRecords.map((r) => r.committed?.id ?? 0);
  const stateLast = Math.max(...stateIds);
  const sinksLast = Math.max(0, ...sinkIds);
  const lastId = Math.max(stateLast, sinksLast);
  const held = sinkRecords.filter((r) => r.committed !== undefined);
  const holding = `${held.length > 1 ? 'sinks' : 'sink'} ${held.map((r) => `${r.sink} (checkpoint ${r.committed?.id})`).join(', ')}`;

  if (input.reset) {
    const warnings = held.length
      ? [
          `starting over (--reset) although ${holding} already ${held.length > 1 ? 'hold' : 'holds'} data of this pipeline: it is ` +
            'loaded again, and a sink that appends (a table without unique_key, a file) then holds it twice: empty it first ' +
            '(a table: etl query "TRUNCATE <table>")',
        ]
      : [];
    return { resumeFrom: undefined, save: false, lastId, warnings };
  }
  if (state && (state.committed || state.pending) && sinksLast <= stateLast) return fromState(state, input, lastId);
  if (held.length === 0) return { resumeFrom: undefined, save: false, lastId, warnings: [] };

  const why =
    !state?.committed && !state?.pending
      ? 'the state directory holds no checkpoint of this pipeline (removed, or a data_dir that did not persist)'
      : `the state directory's last checkpoint is ${stateLast}, older than the data the sinks committed (restored from a backup?)`;
  const ids = new Set(sinkRecords.map((r) => r.committed?.id));
  if (ids.size > 1) {
    const each = sinkRecords.map((r) => `${r.sink} at ${r.committed ? `checkpoint ${r.committed.id}` : 'none'}`);
    throw new EtlError(
      'ETL_STATE_MISMATCH',
      `pipeline ${input.pipeline}: ${why}, and the sinks that keep their own record disagree (${each.join(', ')}): ` +
        `no position is right for all of them. Restore the state directory, or ${HOW_TO_START_OVER}`,
    );
  }
  const blocking = input.stateOnlyHere.filter((id) => !input.forget.includes(id));
  if (blocking.length > 0) {
    throw new EtlError(
      'ETL_STATE_MISMATCH',
      `pipeline ${input.pipeline}: ${why}; ${holding} committed its data with the positions it was read from, but the state of ` +
        `${blocking.join(', ')} was kept only there. Restore the state directory; or resume from the sinks' ` +
        `positions without it with --forget ${blocking.join(',')} (a file sink then keeps what it wrote after ` +
        `that checkpoint, a stateful stage starts empty); or ${HOW_TO_START_OVER}`,
    );
  }
  const committed = held[0]?.committed as CommittedCheckpoint;
  const resumeFrom: CheckpointRecord = {
    id: committed.id,
    time: new Date().toISOString(),
    positions: { ...committed.positions },
    sinks: {},
    transforms: {},
  };
  return {
    resumeFrom,
    save: true,
    lastId,
    warnings: [`${why}: resuming from checkpoint ${committed.id}, the positions ${holding} committed with the data`],
  };
}

/** The state directory decides: a pending checkpoint counts only if every sink with its own record committed it. */
function fromState(state: PipelineState, input: ResumeInputs, lastId: number): ResumeDecision {
  const pending = state.pending;
  if (!pending) return { resumeFrom: state.committed, save: false, lastId, warnings: [] };
  const ids = input.sinkRecords.map((r) => r.committed?.id);
  const pendingCommitted = ids.every((id) => id === pending.id);
  const warnings =
    !pendingCommitted && ids.some((id) => id === pending.id)
      ? [
          `sinks disagree about the last checkpoint (${input.sinkRecords
            .map((r) => `${r.sink} at ${r.committed?.id ?? 'none'}`)
            .join(', ')}); resuming from the older one, ${state.committed?.id ?? 'the start'}`,
        ]
      : [];
  const resumeFrom = pendingCommitted ? pending : state.committed;
  return { resumeFrom, save: resumeFrom !== undefined, lastId, warnings };
}
