/** Telemetry and logging that do nothing: for tests and for embedding the runtime. */
import type { Logger, OperatorMetrics } from '../operator.ts';
import type { StageTelemetry, Telemetry } from '../telemetry/types.ts';

const noopStage: StageTelemetry = {
  startBatch: () => undefined,
  received: () => {},
  sent: () => {},
  error: () => {},
  discarded: () => {},
};

const noopInstrument = { inc: () => {}, set: () => {} };

export const noopMetrics: OperatorMetrics = {
  counter: () => noopInstrument,
  gauge: () => noopInstrument,
};

export const noopTelemetry: Telemetry = {
  tracing: false,
  stage: () => noopStage,
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
