import { defineSink } from '../../../engine/operator.ts';
import { layoutProblems } from './layout.ts';
import { type PostgresSinkOptions, schema } from './schema.ts';

export default defineSink<typeof schema, PostgresSinkOptions>({
  type: 'postgres',
  stability: 'beta',
  summary: 'Loads records into a partitioned PostgreSQL table (server or embedded) with COPY, exactly once',
  schema,
  accepts: ['access', 'error_log', 'dead_letter', 'any'],
  // Columns follow the input; raw lines would make a table of lines without an event time, which is rather a
  // missing `parse`. A named record schema takes only its kind: others would fail row by row at run time.
  acceptsFor: (options) =>
    options.record_schema === undefined
      ? ['access', 'error_log', 'dead_letter']
      : options.record_schema === 'none'
        ? ['any']
        : [options.record_schema],
  acceptsHint: (kind) =>
    kind === 'error_log' || kind === 'dead_letter'
      ? `store them in a table of their own: a postgres sink without \`record_schema\` (or with \`record_schema: ${kind}\`)`
      : undefined,
  examples: [
    {
      schema: 'public',
      table: 'access_logs',
      columns: {},
      origin_columns: {},
      extra_column: 'extra',
      time_column: 'timestamp',
      partition: 'day',
      partition_premake: 3,
      future_partition_limit_hours: 48,
      past_partition_limit_days: 3660,
      indexes: [],
      on_conflict: 'ignore',
      pool_max_connections: 2,
      copy_format: 'auto',
      max_uncommitted_bytes: 16777216,
      connect_timeout_seconds: 10,
      reconnect_initial_backoff_ms: 100,
      reconnect_max_backoff_ms: 5000,
      wait_for_server_seconds: 0,
    },
    {
      url: 'postgres://etl@127.0.0.1:5432/logs',
      schema: 'web',
      table: 'access_logs',
      record_schema: 'access',
      columns: { client_ip: 'text' },
      origin_columns: {},
      extra_column: 'extra',
      time_column: 'timestamp',
      partition: 'day',
      partition_premake: 3,
      future_partition_limit_hours: 48,
      past_partition_limit_days: 3660,
      retention: '90d',
      indexes: [
        { columns: ['status'], method: 'btree' },
        { columns: ['path', 'timestamp'], method: 'btree' },
      ],
      on_conflict: 'ignore',
      pool_max_connections: 2,
      copy_format: 'auto',
      max_uncommitted_bytes: 16777216,
      connect_timeout_seconds: 10,
      reconnect_initial_backoff_ms: 100,
      reconnect_max_backoff_ms: 5000,
      wait_for_server_seconds: 30,
      max_outage_seconds: 600,
    },
  ],
  validate: (options, { inputSchema }) => layoutProblems(options, inputSchema),
  storeKey: (options) =>
    options.unique_key === undefined
      ? undefined
      : { fields: options.unique_key, path: ['unique_key'], replaces: options.on_conflict === 'update' },
  query: { open: async (options, where) => (await import('./query.ts')).queryable.open(options, where) },
  create: async (options, ctx) => (await import('./postgres.ts')).createPostgresSink(options, ctx),
});
