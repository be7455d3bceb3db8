/**
 * Drives a source through its contract without the runtime (as OpenTelemetry's consumertest does for
 * receivers): a context whose logger and metrics record what they get, and an output that collects batches
 * (optionally slowly) and resolves waits on conditions as batches arrive.
 */
import type { SourceContext, SourceOutput } from '../../engine/operator.ts';
import { type EtlRecord, ORIGIN, type Origin } from '../../engine/record.ts';
import { type RecordingContext, recordingContext } from './context.ts';

export type { LogEntry } from './context.ts';

export interface ReportedInputError {
  reason: string;
  where: Omit<Origin, 'source'> | undefined;
}

export interface TestContext extends SourceContext, RecordingContext {}

export function testContext(
  overrides: { restoredPosition?: unknown; batchMaxRecords?: number; baseDir?: string } = {},
): TestContext {
  const base = overrides.baseDir ?? process.cwd();
  return {
    ...recordingContext({ id: 'src', dataDir: base, baseDir: base }),
    restoredPosition: overrides.restoredPosition,
    batchMaxRecords: overrides.batchMaxRecords ?? 1000,
  };
}

export interface Emitted {
  records: EtlRecord[];
  position: unknown;
  bytes: number | undefined;
}

export interface CollectingOutput extends SourceOutput {
  readonly batches: Emitted[];
  /** Every record emitted so far, in order. */
  readonly records: EtlRecord[];
  readonly messages: string[];
  /** The position of the last emit (records or not). */
  readonly lastPosition: unknown;
  readonly progressCalls: Array<{ done: number; total: number }>;
  /** What the source reported with `inputError`. */
  readonly inputErrors: ReportedInputError[];
  readonly controller: AbortController;
  /** Resolves once `predicate` holds after an emit (a condition never met ends in the test's timeout). */
  until(predicate: (out: CollectingOutput) => boolean): Promise<void>;
}

export interface CollectOptions {
  /** Delay of every emit, as a slow downstream would. */
  delayMs?: number;
  /** Called at the start of every emit, before the delay. */
  onEmit?(batch: Emitted): void;
  /** Abort `stopping` once this many non-empty batches were emitted. */
  stopAfterBatches?: number;
}

export function collectOutput(options: CollectOptions = {}): CollectingOutput {
  const controller = new AbortController();
  const batches: Emitted[] = [];
  const records: EtlRecord[] = [];
  const messages: string[] = [];
  const progressCalls: Array<{ done: number; total: number }> = [];
  const inputErrors: ReportedInputError[] = [];
  const waiters = new Set<() => void>();
  let lastPosition: unknown;
  const out: CollectingOutput = {
    batches,
    records,
    messages,
    progressCalls,
    inputErrors,
    controller,
    get lastPosition() {
      return lastPosition;
    },
    stopping: controller.signal,
    async emit(batch, position, bytes) {
      if (controller.signal.aborted) throw new Error('emit after stopping');
      const emitted = { records: batch, position: structuredClone(position), bytes };
      options.onEmit?.(emitted);
      if (options.delayMs) await new Promise((resolve) => setTimeout(resolve, options.delayMs));
      lastPosition = emitted.position;
      if (batch.length > 0) {
        batches.push(emitted);
        for (const r of batch) {
          records.push(r);
          messages.push(String(r.message));
        }
        if (options.stopAfterBatches !== undefined && batches.length >= options.stopAfterBatches) controller.abort();
      }
      for (const wake of waiters) wake();
      return { sent: true, durable: () => Promise.resolve() };
    },
    onCommitted() {},
    progress(done, total) {
      progressCalls.push({ done, total });
    },
    inputError(reason, where) {
      inputErrors.push({ reason, where });
      for (const wake of waiters) wake();
    },
    until(predicate) {
      if (predicate(out)) return Promise.resolve();
      return new Promise((resolve) => {
        const check = (): void => {
          if (!predicate(out)) return;
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
      });
    },
  };
  return out;
}

export function originOf(record: EtlRecord): Origin {
  const origin = record[ORIGIN];
  if (!origin) throw new Error('record without origin');
  return origin;
}
