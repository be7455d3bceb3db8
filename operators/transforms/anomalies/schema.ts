import type { FromSchema } from 'json-schema-to-ts';

/** The named output port anomaly records leave on. */
export const ANOMALIES_PORT = 'anomalies';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/transforms/anomalies.json',
  type: 'object',
  additionalProperties: false,
  description:
    'Counts records per key and event-time bucket, and flags buckets whose count breaks from the key’s own recent ' +
    'baseline (an exponentially weighted mean and deviation) with a record on the `anomalies` port. Records pass on ' +
    'unchanged on the default port.',
  properties: {
    key_fields: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'string',
        minLength: 1,
        description: 'A field of the records (dotted for a path into an object).',
      },
      default: ['client_ip', 'path'],
      description:
        'The fields whose values (with the status class, see `status_field`) make a key with its own baseline.',
      examples: [['client_ip', 'path'], ['vhost']],
    },
    status_field: {
      type: ['string', 'null'],
      minLength: 1,
      default: 'status',
      description:
        'The HTTP status field; its class (`2xx` … `5xx`) is part of the key and of each anomaly record as ' +
        '`status_class`. Null: the key is `key_fields` alone.',
      examples: ['status', null],
    },
    time_field: {
      type: 'string',
      minLength: 1,
      default: 'timestamp',
      description: 'The event-time field: an ISO-8601 text (as `parse` emits `timestamp`), or epoch milliseconds.',
      examples: ['timestamp'],
    },
    bucket_seconds: {
      type: 'number',
      exclusiveMinimum: 0,
      default: 60,
      description: 'The rate is the count of records per key in buckets of this length, in event time.',
      examples: [60],
    },
    half_life_buckets: {
      type: 'number',
      exclusiveMinimum: 0,
      default: 30,
      description:
        'How fast the baseline forgets: a bucket this many buckets old weighs half as much as the latest one.',
      examples: [30],
    },
    threshold: {
      type: 'number',
      exclusiveMinimum: 0,
      default: 4,
      description: 'A bucket is anomalous when its count is at least this many deviations from the baseline.',
      examples: [4],
    },
    min_count: {
      type: 'integer',
      minimum: 1,
      default: 20,
      description:
        'A rise is flagged only when the bucket holds at least this many records, a drop only when the baseline ' +
        'is at least this: a key going from 1 to 3 requests is no incident.',
      examples: [20],
    },
    warmup_buckets: {
      type: 'integer',
      minimum: 0,
      default: 10,
      description: 'Buckets a key must have been counted over (its baseline) before any of its buckets is flagged.',
      examples: [10],
    },
    direction: {
      type: 'string',
      enum: ['up', 'both'],
      default: 'up',
      description: '`up`: flag rises only; `both`: also drops (down to no record at all).',
      examples: ['up'],
    },
    max_keys: {
      type: 'integer',
      minimum: 1,
      default: 100000,
      description:
        'Keys held at most. Past it, the least recently seen tenth is evicted; an evicted key that returns starts ' +
        'a new baseline (and warms up again).',
      examples: [100000],
    },
  },
} as const;

export type AnomaliesOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
