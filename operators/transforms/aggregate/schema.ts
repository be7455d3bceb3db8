import type { FromSchema } from 'json-schema-to-ts';

/** Output field names: they become PostgreSQL columns. */
const IDENTIFIER = '^[a-z_][a-z0-9_]{0,62}$';

export const FUNCTIONS = ['count', 'distinct', 'sum', 'min', 'max', 'avg', 'p50', 'p95', 'p99'] as const;
export type AggregateFunction = (typeof FUNCTIONS)[number];

export const schema = {
  $id: 'https://etl.dev/schemas/operators/transforms/aggregate.json',
  title: 'aggregate transform',
  description:
    'Tumbling or sliding windows on event time, grouped by fields, with counts, distinct counts, sums, min, max, ' +
    'averages and quantiles; a window is emitted when the watermark passes its end, and again when a late record changes it.',
  type: 'object',
  additionalProperties: false,
  required: ['window_seconds', 'aggregates'],
  properties: {
    window_seconds: {
      type: 'integer',
      minimum: 1,
      maximum: 31_622_400,
      description: 'Length of a window. Windows are aligned on the epoch (UTC): 60 gives minutes, 3600 hours.',
      examples: [60, 3600],
    },
    slide_seconds: {
      type: 'integer',
      minimum: 1,
      description:
        'Sliding (hopping) windows: a window of `window_seconds` starts every `slide_seconds`, so a record counts ' +
        'in `window_seconds / slide_seconds` windows (it must divide `window_seconds`). Absent: tumbling windows.',
      examples: [60],
    },
    allowed_lateness_seconds: {
      type: 'number',
      minimum: 0,
      default: 0,
      description:
        'How long after a window was emitted (the watermark passed its end) a late record still updates it: the ' +
        'window is emitted again with the record counted. Later records go to dead_letter.',
      examples: [0, 300],
    },
    time_field: {
      type: 'string',
      minLength: 1,
      default: 'timestamp',
      description:
        'Field holding the event time (ISO-8601 text or epoch milliseconds). Keep it the pipeline’s ' +
        '`settings.event_time_field`, which the watermark follows.',
      examples: ['timestamp'],
    },
    group_by: {
      type: 'array',
      items: { type: 'string', minLength: 1, pattern: IDENTIFIER, description: 'A field of the input records.' },
      uniqueItems: true,
      default: [],
      description: 'Fields whose values make a group: one output record per window and group.',
      examples: [['path'], ['geo_country']],
    },
    top: {
      type: 'object',
      additionalProperties: false,
      required: ['n', 'by'],
      description:
        'Top-N per window: only the `n` groups with the greatest `by` aggregate are emitted, each with its `rank` ' +
        '(1 is the greatest), all of them again when a late record changes the window. Key the table on ' +
        '`[window_start, rank]`.',
      properties: {
        n: { type: 'integer', minimum: 1, maximum: 10000, description: 'How many groups per window.' },
        by: { type: 'string', minLength: 1, description: 'The aggregate (a name under `aggregates`) to rank by.' },
      },
      examples: [{ n: 10, by: 'requests' }],
    },
    aggregates: {
      type: 'object',
      minProperties: 1,
      propertyNames: { pattern: IDENTIFIER },
      description:
        'Output field name to what it holds, e.g. `requests: { fn: count }`, `clients: { fn: distinct, field: ' +
        'client_ip }`, `duration_p95: { fn: p95, field: duration }`.',
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['fn'],
        properties: {
          fn: {
            type: 'string',
            enum: FUNCTIONS,
            description:
              '`count` (records, or with `field` those where it is not null); `distinct`: how many distinct ' +
              'non-null values `field` takes (exact up to 256, then a HyperLogLog within 0.8% standard error); ' +
              '`sum`, `min`, `max`, `avg` of a numeric field; `p50`, `p95`, `p99`: quantiles within 1% relative ' +
              'error (DDSketch).',
          },
          field: { type: 'string', minLength: 1, description: 'The input field; required except for `count`.' },
          between: {
            type: 'array',
            items: { type: 'number' },
            minItems: 2,
            maxItems: 2,
            description: 'With `count`: only records whose `field` is a number in [low, high], e.g. `[500, 599]`.',
          },
        },
      },
      examples: [{ requests: { fn: 'count' }, bytes_sum: { fn: 'sum', field: 'bytes' } }],
    },
  },
} as const;

export type AggregateOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
export interface AggregateSpec {
  readonly fn: AggregateFunction;
  readonly field?: string;
  readonly between?: readonly number[];
}
