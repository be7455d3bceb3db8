/** Telemetry and logging that do nothing: for tests and for embedding the runtime. */
import type { Logger, OperatorContext, OperatorMetrics } from '../operator.ts';
import type { PipelineTelemetry, StageTelemetry, Telemetry } from '../telemetry/types.ts';

const nothing = (): void => {};

const noopStage: StageTelemetry = {
  startBatch: () => undefined,
  received: nothing,
  sent: nothing,
  error: nothing,
  discarded: nothing,
  batch: nothing,
  deadLettered: nothing,
  read: nothing,
  creditWait: nothing,
  sourceState: nothing,
  writeTime: nothing,
  commitTime: nothing,
  retry: nothing,
  reconnected: nothing,
  circuit: nothing,
  committed: nothing,
};

const noopPipeline: PipelineTelemetry = {
  up: nothing,
  checkpointCommitted: nothing,
  checkpointCurrent: nothing,
  edge: () => ({ sent: 0, done: 0 }),
};

const noopInstrument = { inc: () => {}, set: () => {} };

export const noopMetrics: OperatorMetrics = {
  counter: () => noopInstrument,
  gauge: () => noopInstrument,
};

export const noopTelemetry: Telemetry = {
  tracing: false,
  stage: () => noopStage,
  pipeline: () => noopPipeline,
  operatorMetrics: () => noopMetrics,
  metricsText: async () => '',
  shutdown: async () => {},
};

export const silentLogger: Logger & { child(bindings: Record<string, unknown>): Logger } = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
};

/**
 * Operator state for an operator run outside a pipeline (tests, benchmarks): keyed maps in memory, not
 * checkpointed, and one snapshot.
 */
export const detachedState: Pick<OperatorContext, 'snapshotId' | 'keyed' | 'watermark' | 'resource'> = {
  snapshotId: () => 1,
  keyed: <V>() => new Map<string, V>(),
  watermark: () => undefined,
  resource: (name: string) => {
    throw new Error(`resource ${name}: no shared resources outside a pipeline`);
  },
};
