/**
 * The parts of the pipeline schema that belong to no operator: metadata, settings, telemetry and the keys
 * every stage shares (`type`, `inputs`, `on_error`, `retry`).
 */
import type { StageKind } from '../config/types.ts';
import { DEFAULT_RETRY } from '../retry.ts';

export type JsonSchema = { [keyword: string]: unknown };

export const API_VERSION = 'etl/v1';
export const PIPELINE_KIND = 'Pipeline';
export const JSON_SCHEMA_DIALECT = 'http://json-schema.org/draft-07/schema#';
export const SCHEMA_BASE_URL = 'https://etl.dev/schemas';

/** `.` is reserved for ports (`parsed.dead_letter`). */
export const STAGE_ID_PATTERN = '^[A-Za-z][A-Za-z0-9_-]*$';
export const INPUT_PATTERN = '^[A-Za-z][A-Za-z0-9_-]*(\\.[A-Za-z][A-Za-z0-9_-]*)?$';
export const PIPELINE_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_-]*$';

export const COMMON_STAGE_KEYS = ['type', 'inputs', 'on_error', 'retry', 'max_in_flight', 'workers'] as const;

export interface StageSection {
  /** Key under `spec`. */
  readonly key: 'sources' | 'operators' | 'sinks';
  readonly kind: StageKind;
  /** Folder under operators/ and schemas/operators/. */
  readonly folder: 'sources' | 'transforms' | 'sinks';
}

export const STAGE_SECTIONS: readonly StageSection[] = [
  { key: 'sources', kind: 'source', folder: 'sources' },
  { key: 'operators', kind: 'transform', folder: 'transforms' },
  { key: 'sinks', kind: 'sink', folder: 'sinks' },
];

/**
 * What other tools call the stage sections (Vector: transforms; Fluent Bit and Logstash: inputs, filters,
 * outputs; Benthos: processors). Not accepted, but understood: the error says which section is meant, and the
 * stages under such a key still take part in the graph checks, so one wrong word does not hide the rest.
 */
export const SECTION_SYNONYMS: Readonly<Record<string, StageSection['key']>> = {
  transforms: 'operators',
  filters: 'operators',
  processors: 'operators',
  inputs: 'sources',
  outputs: 'sinks',
};

export function sectionOf(kind: StageKind): StageSection {
  return STAGE_SECTIONS.find((s) => s.kind === kind) as StageSection;
}

export const DEFAULT_ON_ERROR = { transform: 'dead_letter', sink: 'retry' } as const;

/**
 * The checkpoint interval of a pipeline with a source that follows its input, unless the pipeline sets one. A row
 * waits about half of it to be committed: the traffic chain at 50,000 lines/s (bench/freshness.ts, two interleaved
 * pairs on a quiet machine) had p95 309–313 ms with 0.15 s against 366–423 ms with 0.25 s, for the same CPU.
 */
export const LIVE_CHECKPOINT_INTERVAL_SECONDS = 0.15;

export const DEFAULT_SETTINGS = {
  data_dir: '.etl',
  checkpoint_interval_seconds: 1,
  batch_max_records: 1024,
  max_batches_in_flight: 8,
  shutdown_timeout_seconds: 30,
  event_time_field: 'timestamp',
  watermark_lateness_seconds: 10,
  idle_source_seconds: 60,
} as const;

export const metadataSchema: JsonSchema = {
  type: 'object',
  description: 'Identifies the pipeline.',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: {
      type: 'string',
      description: 'Unique among the pipelines loaded together; names the state directory of the pipeline.',
      pattern: PIPELINE_NAME_PATTERN,
      maxLength: 63,
      examples: ['web-access'],
    },
    description: { type: 'string', description: 'Free text for people reading the pipeline.' },
    labels: {
      type: 'object',
      description: 'Free-form key/value labels.',
      additionalProperties: { type: 'string' },
      examples: [{ team: 'web' }],
    },
  },
};

export const settingsSchema: JsonSchema = {
  type: 'object',
  description: 'Engine settings of this pipeline; every key is optional.',
  additionalProperties: false,
  default: {},
  properties: {
    data_dir: {
      type: 'string',
      description: 'Directory for state (checkpoints, embedded database), relative to the working directory.',
      minLength: 1,
      default: DEFAULT_SETTINGS.data_dir,
    },
    checkpoint_interval_seconds: {
      type: 'number',
      description:
        'How often source positions and sink states are checkpointed, which is when sinks commit: rows become ' +
        `queryable at each checkpoint. Default: ${LIVE_CHECKPOINT_INTERVAL_SECONDS} s when a source follows its ` +
        `input (live: rows queryable within about a third of a second), ${DEFAULT_SETTINGS.checkpoint_interval_seconds} s ` +
        'otherwise (a finite load, where fewer commits leave more time to loading).',
      exclusiveMinimum: 0,
      examples: [1, LIVE_CHECKPOINT_INTERVAL_SECONDS],
    },
    batch_max_records: {
      type: 'integer',
      description: 'Records per batch a source aims for.',
      minimum: 1,
      maximum: 1_000_000,
      default: DEFAULT_SETTINGS.batch_max_records,
    },
    max_batches_in_flight: {
      type: 'integer',
      description: 'Unacknowledged batches a source may have in flight; bounds memory.',
      minimum: 1,
      maximum: 65_536,
      default: DEFAULT_SETTINGS.max_batches_in_flight,
    },
    shutdown_timeout_seconds: {
      type: 'number',
      description: 'How long a graceful shutdown may take before the run is aborted.',
      minimum: 0,
      default: DEFAULT_SETTINGS.shutdown_timeout_seconds,
    },
    event_time_field: {
      type: 'string',
      minLength: 1,
      description:
        'Field holding a record’s event time (ISO-8601 text or epoch milliseconds), for time-aware stages ' +
        '(windows, sessions): the watermark follows it.',
      default: DEFAULT_SETTINGS.event_time_field,
    },
    watermark_lateness_seconds: {
      type: 'number',
      minimum: 0,
      description:
        'How far out of order records may arrive: the watermark (no record older than it is expected any more) ' +
        'is the greatest event time seen minus this, per source, the least over the sources at a fan-in.',
      default: DEFAULT_SETTINGS.watermark_lateness_seconds,
    },
    idle_source_seconds: {
      type: 'number',
      exclusiveMinimum: 0,
      description:
        'A source whose records have not reached a stage for this long (or that has sent none since the start) ' +
        'stops holding back its watermark, so that windows close while an input is quiet.',
      default: DEFAULT_SETTINGS.idle_source_seconds,
    },
    audit_log: {
      type: 'string',
      minLength: 1,
      description:
        'A file (JSON lines) that each run appends one line to, whatever its outcome: when it ran, what it read, ' +
        'what each sink wrote, what each stage rejected, what stages counted of their work (fields anonymized…) ' +
        "and the sinks' retention. Relative to the working directory.",
      examples: ['.etl/audit/web.jsonl'],
    },
  },
};

export const telemetrySchema: JsonSchema = {
  type: 'object',
  description: 'Traces and metrics of the run.',
  additionalProperties: false,
  default: {},
  properties: {
    traces: {
      type: 'object',
      description: 'Span export. The standard OTEL_* environment variables are honoured too.',
      additionalProperties: false,
      default: {},
      properties: {
        exporter: {
          type: 'string',
          description: '`otlp` exports one span per batch per stage over OTLP/HTTP; `none` disables tracing.',
          enum: ['none', 'otlp'],
          default: 'none',
        },
        endpoint: {
          type: 'string',
          description: 'OTLP/HTTP endpoint (with `exporter: otlp`).',
          format: 'uri',
          examples: ['http://127.0.0.1:4318'],
        },
        sample_ratio: {
          type: 'number',
          description:
            'Share of the traces started here that are recorded, 0 to 1 (parent-based: a batch arriving with a W3C `traceparent` follows its parent). Wins over OTEL_TRACES_SAMPLER; default: that variable, else every trace.',
          minimum: 0,
          maximum: 1,
          examples: [0.01],
        },
      },
    },
    metrics: {
      type: 'object',
      description: 'Metrics exposition.',
      additionalProperties: false,
      properties: {
        prometheus_port: {
          type: 'integer',
          description: 'Serve Prometheus metrics on this port during `apply`.',
          minimum: 1,
          maximum: 65_535,
          examples: [9464],
        },
      },
    },
  },
};

export const retrySchema: JsonSchema = {
  type: 'object',
  description: 'Backoff for failures worth retrying (with `on_error: retry`).',
  additionalProperties: false,
  properties: {
    max_attempts: {
      type: 'integer',
      description: 'Attempts in all, the first included; 0 retries until the run stops.',
      minimum: 0,
      default: DEFAULT_RETRY.max_attempts,
    },
    initial_backoff_ms: {
      type: 'integer',
      description: 'Ceiling of the first wait; it doubles per attempt (with full jitter).',
      minimum: 0,
      default: DEFAULT_RETRY.initial_backoff_ms,
    },
    max_backoff_ms: {
      type: 'integer',
      description: 'Upper bound of any single wait.',
      minimum: 0,
      default: DEFAULT_RETRY.max_backoff_ms,
    },
  },
};

/** The keys every stage of `kind` takes besides its operator's options. */
export function commonStageProperties(kind: StageKind, type: string): Record<string, JsonSchema> {
  const props: Record<string, JsonSchema> = {
    type: { type: 'string', const: type, description: `The operator: \`${type}\`.` },
  };
  if (kind === 'source') return props;
  props.inputs = {
    type: 'array',
    description: 'Stages this one reads from: `stage` (its default output) or `stage.port`, e.g. `parsed.dead_letter`.',
    items: { type: 'string', pattern: INPUT_PATTERN },
    examples: [['nginx'], ['parsed.dead_letter']],
  };
  props.on_error = {
    type: 'string',
    description:
      kind === 'sink'
        ? 'When a batch cannot be written: `retry` with backoff, then fail; `dead_letter` routes its records to `<id>.dead_letter`; `fail` stops the run.'
        : 'When a record cannot be processed: `dead_letter` routes it to `<id>.dead_letter`; `retry` retries the batch with backoff; `fail` stops the run.',
    enum: ['fail', 'dead_letter', 'retry'],
    default: DEFAULT_ON_ERROR[kind],
  };
  props.retry = retrySchema;
  props.max_in_flight = {
    type: 'integer',
    minimum: 1,
    maximum: 1024,
    default: 1,
    description:
      kind === 'sink'
        ? 'Batches written at once (for sinks that support it, e.g. bulk HTTP APIs); acknowledged in order.'
        : 'Batches processed at once (for transforms that support it, e.g. lookups over the network); records leave in order.',
  };
  if (kind === 'transform') {
    props.workers = {
      anyOf: [
        { type: 'integer', minimum: 1, maximum: 256 },
        { type: 'string', const: 'auto' },
      ],
      default: 1,
      description:
        'Worker threads the stage runs on (for stateless transforms: parse, geoip, user_agent…); `auto`: one per core. ' +
        'Consecutive stages with the same `workers` run together in each worker, so records cross threads once. ' +
        'Records leave in order; 1 runs on the main thread.',
      examples: [2, 'auto'],
    };
  }
  return props;
}
