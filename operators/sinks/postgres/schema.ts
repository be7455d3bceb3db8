import type { FromSchema } from 'json-schema-to-ts';

/** SQL types a column may have; the encoder validates values for each before they reach COPY. */
export const SQL_TYPES = [
  'text',
  'smallint',
  'integer',
  'bigint',
  'double precision',
  'numeric',
  'boolean',
  'timestamptz',
  'inet',
  'jsonb',
] as const;

const IDENTIFIER = '^[a-z_][a-z0-9_]{0,62}$';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/sinks/postgres.json',
  type: 'object',
  additionalProperties: false,
  description:
    'Loads records into a PostgreSQL table with COPY, partitioned by event time, exactly once with the checkpoint ' +
    'committed in the same transaction. Without `url` (and without DATABASE_URL) it uses an embedded PostgreSQL ' +
    '(PGlite) under `<data_dir>/pgdata`.',
  properties: {
    url: {
      type: 'string',
      description:
        'Connection URL of a PostgreSQL >= 15 server. When absent, DATABASE_URL is used; when that is unset too, the ' +
        'embedded database under `<data_dir>/pgdata`.',
      examples: ['postgres://etl@127.0.0.1:5432/logs'],
    },
    schema: {
      type: 'string',
      pattern: IDENTIFIER,
      default: 'public',
      description: 'Database schema holding the table and the `etl_checkpoints` table; created when missing.',
      examples: ['public', 'web'],
    },
    table: {
      type: 'string',
      pattern: '^[a-z_][a-z0-9_]{0,47}$',
      default: 'access_logs',
      description: 'Table to load (at most 48 characters, so partition names fit in 63).',
      examples: ['access_logs', 'requests_per_minute'],
    },
    record_schema: {
      type: 'string',
      enum: ['access', 'error_log', 'dead_letter', 'none'],
      description:
        'Derive the columns from this record schema instead of the schema of the records reaching the sink, and ' +
        'take only records of that kind: `access` (access records), `error_log` (error-log records), ' +
        '`dead_letter`, or `none` (any records: only the `columns` below, everything else in the extra column). ' +
        'Absent: the columns follow the input, so a field a stage upstream adds becomes a column of its type.',
      examples: ['access', 'none'],
    },
    columns: {
      type: 'object',
      description:
        'Columns to add, or whose derived type to override: column (= record field) name to SQL type. Existing ' +
        'columns are never altered or dropped; new ones are added.',
      propertyNames: { pattern: IDENTIFIER },
      additionalProperties: { type: 'string', enum: SQL_TYPES },
      default: {},
      examples: [{ country: 'text', latitude: 'numeric' }],
    },
    origin_columns: {
      type: 'object',
      description:
        'Columns filled from where each record entered the pipeline (its origin) rather than from its fields: column ' +
        'name to origin property: `source` (the source stage id), `file`, `offset`, `line`, and for a queue source ' +
        '(nats) `sequence` (the stream sequence, unique per stream), `subject`, `deliveries`. With an at-least-once ' +
        'source, a `unique_key` on the sequence column stores a redelivered message once.',
      propertyNames: { pattern: IDENTIFIER },
      additionalProperties: {
        type: 'string',
        enum: ['source', 'file', 'offset', 'line', 'sequence', 'subject', 'deliveries'],
      },
      default: {},
      examples: [{ nats_sequence: 'sequence', nats_subject: 'subject' }],
    },
    extra_column: {
      type: 'string',
      pattern: IDENTIFIER,
      default: 'extra',
      description:
        'jsonb column collecting the record fields that have no column of their own (merged into the field of the ' +
        'same name when the record has one).',
      examples: ['extra', 'attributes'],
    },
    time_column: {
      type: 'string',
      pattern: IDENTIFIER,
      default: 'timestamp',
      description: 'timestamptz column holding the event time: the partition key and the BRIN-indexed column.',
      examples: ['timestamp', 'window_start'],
    },
    partition: {
      type: 'string',
      enum: ['hour', 'day', 'month', 'none'],
      default: 'day',
      description:
        'Declarative RANGE partitioning on the time column (UTC buckets), with a default partition for outliers. ' +
        'Fixed when the table is created.',
      examples: ['day', 'month'],
    },
    partition_premake: {
      type: 'integer',
      minimum: 0,
      maximum: 1000,
      default: 3,
      description: 'Partitions created ahead of the current time bucket, so the next hour, day or month is ready.',
      examples: [3],
    },
    future_partition_limit_hours: {
      type: 'integer',
      minimum: 1,
      default: 48,
      description:
        'Rows more than this far ahead of the current time get no partition of their own and land in the default ' +
        'partition (clock skew, garbage timestamps).',
      examples: [48],
    },
    past_partition_limit_days: {
      type: 'integer',
      minimum: 1,
      default: 3660,
      description:
        'Rows older than this (or older than `retention`) get no partition of their own and land in the default ' +
        'partition; backfills within the limit get their partitions on demand.',
      examples: [3660, 400],
    },
    retention: {
      type: 'string',
      pattern: '^[1-9][0-9]{0,5}[hdw]$',
      description:
        'Drops whole partitions (and default-partition rows) older than this: a number with `h`, `d` or `w`. ' +
        'Absent: keep everything.',
      examples: ['90d', '12w'],
    },
    indexes: {
      type: 'array',
      default: [],
      description: 'Indexes your queries need, besides the BRIN index on the time column.',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['columns'],
        properties: {
          columns: {
            type: 'array',
            minItems: 1,
            items: { type: 'string', pattern: IDENTIFIER },
            description: 'Indexed columns, in order.',
          },
          method: {
            type: 'string',
            enum: ['btree', 'brin', 'gin', 'hash'],
            default: 'btree',
            description: 'Index access method.',
          },
        },
      },
      examples: [[{ columns: ['status'] }, { columns: ['path', 'timestamp'] }]],
    },
    unique_key: {
      type: 'array',
      items: { type: 'string', pattern: IDENTIFIER },
      minItems: 1,
      description:
        'Columns identifying a row, for at-least-once sources and rollups: rows load through a staging table with ' +
        'INSERT … ON CONFLICT. With partitioning it must include the time column.',
      examples: [['client_ip', 'timestamp', 'path']],
    },
    on_conflict: {
      type: 'string',
      enum: ['ignore', 'update'],
      default: 'ignore',
      description:
        'With `unique_key`: `ignore` keeps the stored row (DO NOTHING); `update` overwrites it with the new one ' +
        '(DO UPDATE), for rollup tables.',
      examples: ['ignore', 'update'],
    },
    pool_max_connections: {
      type: 'integer',
      minimum: 1,
      maximum: 64,
      default: 2,
      description:
        'Upper bound of the connection pool to a server (one connection carries the load transaction; a second looks up what a load waiting on a lock waits for).',
      examples: [2],
    },
    copy_format: {
      type: 'string',
      enum: ['auto', 'text', 'binary'],
      default: 'auto',
      description:
        'Format rows are sent in: `text` (COPY text) or `binary` (COPY binary: the database parses less, the ' +
        'sink sends more bytes). `auto`: binary into the embedded database, whose parsing in WebAssembly is ' +
        'the slow side, text to a server (binary did not win end to end there, see the README). Both refuse ' +
        'the same bad values, record by record, before COPY.',
      examples: ['auto', 'text', 'binary'],
    },
    max_uncommitted_bytes: {
      type: 'integer',
      minimum: 65536,
      default: 16777216,
      description:
        'Encoded rows kept since the last commit (replayed after a connection loss); past this the sink asks for ' +
        'a checkpoint early.',
      examples: [16777216],
    },
    connect_timeout_seconds: {
      type: 'number',
      exclusiveMinimum: 0,
      default: 10,
      description: 'Timeout of one connection attempt.',
      examples: [10],
    },
    reconnect_initial_backoff_ms: {
      type: 'integer',
      minimum: 1,
      default: 100,
      description: 'First delay before reconnecting after a connection loss; doubles per attempt, with full jitter.',
      examples: [100],
    },
    reconnect_max_backoff_ms: {
      type: 'integer',
      minimum: 1,
      default: 5000,
      description: 'Cap of the reconnect delay.',
      examples: [5000],
    },
    wait_for_server_seconds: {
      type: 'number',
      minimum: 0,
      default: 0,
      description:
        'How long the start may wait for a server that cannot be reached yet (one that is starting, in a compose ' +
        'stack). 0: a server never reached fails the run at once, with the reason (a wrong port or host says so ' +
        'instead of waiting). Once reached, a lost server is waited for (`max_outage_seconds`).',
      examples: [60],
    },
    max_outage_seconds: {
      type: 'number',
      exclusiveMinimum: 0,
      description:
        'How long PostgreSQL may stay unreachable before the run fails; meanwhile the pipeline is paused ' +
        '(backpressure). Absent: wait as long as it takes.',
      examples: [600],
    },
  },
  examples: [
    {},
    { url: 'postgres://etl@127.0.0.1:5432/logs', table: 'access_logs', partition: 'day', retention: '90d' },
  ],
} as const;

export type PostgresSinkOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
export type SqlType = (typeof SQL_TYPES)[number];
export type OriginProperty = PostgresSinkOptions['origin_columns'][string];

/** The column type of each origin property (engine/record.ts `Origin`). */
export const ORIGIN_COLUMN_TYPES: Readonly<Record<OriginProperty, SqlType>> = {
  source: 'text',
  file: 'text',
  offset: 'bigint',
  line: 'bigint',
  sequence: 'bigint',
  subject: 'text',
  deliveries: 'integer',
};
