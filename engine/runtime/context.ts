import type { PipelineSpec, StageSpec } from '../config/types.ts';
import type { KeyedState, Logger, OperatorContext, StageSignals } from '../operator.ts';
import type { StageTelemetry, Telemetry } from '../telemetry/types.ts';

export interface ContextDeps {
  readonly telemetry: Telemetry;
  readonly logger: Logger;
  readonly signal: AbortSignal;
  readonly baseDir: string;
  readonly requestCheckpoint: () => void;
  /** The id the next cut will have. */
  readonly snapshotId: () => number;
  /** Keyed state of this stage, by name. */
  readonly keyed: <V>(name: string) => KeyedState<V>;
  /** The stage's event-time watermark. */
  readonly watermark: () => number | undefined;
  /** Clients of the pipeline's shared resources, by name. */
  readonly resource: <T>(name: string) => T;
  /** `--wait`: aborted when the run is asked to stop. */
  readonly waitForLocks?: AbortSignal;
}

/**
 * The one place an operator's context is made: what it may use, and of the graph only which of its own
 * output ports are read and the schema of the records reaching it.
 */
export function operatorContext(spec: PipelineSpec, stage: StageSpec, deps: ContextDeps): OperatorContext {
  const readPorts = new Set<string>();
  for (const other of spec.stages) {
    for (const input of other.inputs) if (input.stage === stage.id) readPorts.add(input.port);
  }
  return {
    pipeline: spec.name,
    id: stage.id,
    logger: deps.logger,
    signal: deps.signal,
    dataDir: spec.settings.dataDir,
    baseDir: deps.baseDir,
    metrics: deps.telemetry.operatorMetrics(spec.name, stage.id),
    signals: stageSignals(deps.telemetry.stage(spec.name, stage.id, stage.kind, stage.type)),
    requestCheckpoint: deps.requestCheckpoint,
    readPorts,
    snapshotId: deps.snapshotId,
    keyed: deps.keyed,
    watermark: deps.watermark,
    resource: deps.resource,
    ...(stage.inputSchema === undefined ? {} : { inputSchema: stage.inputSchema }),
    ...(deps.waitForLocks === undefined ? {} : { waitForLocks: deps.waitForLocks }),
  };
}

function stageSignals(telemetry: StageTelemetry): StageSignals {
  return {
    reconnected: () => telemetry.reconnected(),
    circuit: (state) => telemetry.circuit(state),
    sourceState: (read) => telemetry.sourceState(read),
  };
}
