/** What the loader hands to the graph compiler and the runtime: a validated, interpolated pipeline. */
import type { OperatorDefinition, ResourceDefinition } from '../operator.ts';
import type { RecordSchema } from '../record-schema.ts';
import type { RetryPolicy } from '../retry.ts';

export type StageKind = 'source' | 'transform' | 'sink';
export type OnError = 'fail' | 'dead_letter' | 'retry';

/** `parsed.dead_letter` → { stage: 'parsed', port: 'dead_letter' }; a bare id is the `default` port. */
export interface InputRef {
  readonly stage: string;
  readonly port: string;
  /** As written in the YAML. */
  readonly text: string;
}

export interface SourcePosition {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

export interface StageSpec {
  readonly id: string;
  readonly kind: StageKind;
  readonly type: string;
  readonly definition: OperatorDefinition;
  readonly inputs: readonly InputRef[];
  /** The operator's own options, defaults applied, common stage keys removed. */
  readonly options: Readonly<Record<string, unknown>>;
  readonly onError: OnError;
  readonly retry: RetryPolicy;
  /** Batches handled at once (`max_in_flight`); 1 for sources and for operators that are not `concurrent`. */
  readonly maxInFlight: number;
  /** Worker threads of a stateless transform (`workers`, `auto` resolved to the cores); 1 for every other stage. */
  readonly workers: number;
  /** Where the stage is declared, for messages. */
  readonly position: SourcePosition;
  /** The schema of the records reaching the stage (the union over its inputs); undefined for sources. */
  readonly inputSchema?: RecordSchema;
  /** The schema of the records on each output port, `dead_letter` included; computed by the loader. */
  readonly outputSchemas?: Readonly<Record<string, RecordSchema>>;
}

/** A shared resource under `spec.resources`. */
export interface ResourceSpec {
  readonly name: string;
  readonly type: string;
  readonly definition: ResourceDefinition;
  /** Its options, defaults applied, without `type`. */
  readonly options: Readonly<Record<string, unknown>>;
  readonly position: SourcePosition;
}

export interface PipelineSettings {
  /** Where state (checkpoints, embedded database) lives; default `.etl`. */
  readonly dataDir: string;
  readonly checkpointIntervalMs: number;
  /** Records per batch a source aims for. */
  readonly batchMaxRecords: number;
  /** Unacknowledged batches a source may have in flight (its credit). */
  readonly maxBatchesInFlight: number;
  readonly shutdownTimeoutMs: number;
  /** Event time of records, for watermarks: the field, the lateness allowed, when a source counts as idle. */
  readonly eventTimeField: string;
  readonly watermarkLatenessMs: number;
  readonly idleSourceMs: number;
  /** `audit_log`: the file a line per run is appended to (engine/runtime/audit.ts); none when undefined. */
  readonly auditLog?: string;
}

export interface TelemetrySettings {
  /** `otlp` exports spans with the standard OTEL_EXPORTER_OTLP_* variables; `none` costs next to nothing. */
  readonly traces: 'otlp' | 'none';
  readonly otlpEndpoint?: string;
  /** Share of the traces started here that are recorded (0..1); undefined: OTEL_TRACES_SAMPLER, else all. */
  readonly sampleRatio?: number;
  /** Serve Prometheus metrics on this port during `apply`; undefined: do not serve. */
  readonly prometheusPort?: number;
}

export interface PipelineSpec {
  readonly name: string;
  readonly file: string;
  readonly description?: string;
  readonly settings: PipelineSettings;
  readonly telemetry: TelemetrySettings;
  readonly stages: readonly StageSpec[];
  /** Shared resources the stages name, opened once per run. */
  readonly resources: readonly ResourceSpec[];
  /** Option values that came from variables marked secret; never printed. */
  readonly secrets: readonly string[];
}
