import type { FromSchema } from 'json-schema-to-ts';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/transforms/dedupe.json',
  type: 'object',
  additionalProperties: false,
  description:
    'Drops records already seen within a time window: the same values of `fields`, or the same whole record. ' +
    'The first occurrence always passes; the duplicates dropped are counted (`etl_dedupe_dropped_total`).',
  properties: {
    fields: {
      type: 'array',
      minItems: 1,
      items: { type: 'string', minLength: 1 },
      description:
        'The fields whose values make the key (a missing field counts as null); omit to key on the whole record ' +
        '(every field, in any order).',
      examples: [['client_ip', 'path', 'status'], ['request_id']],
    },
    window_seconds: {
      type: 'number',
      exclusiveMinimum: 0,
      default: 3600,
      description: 'How long a key is remembered after its first occurrence: later occurrences within it are dropped.',
      examples: [3600, 60],
    },
    time: {
      type: 'string',
      enum: ['processing', 'event'],
      default: 'processing',
      description:
        '`processing`: the window runs on the clock of the machine (the Redis server with `store: redis`). ' +
        '`event`: on the records\u2019 `time_field` (memory store only); a record without a readable time is ' +
        'sent to `dead_letter`.',
      examples: ['processing', 'event'],
    },
    time_field: {
      type: 'string',
      minLength: 1,
      default: 'timestamp',
      description: 'With `time: event`, the field holding the event time (ISO-8601 text or epoch milliseconds).',
      examples: ['timestamp'],
    },
    store: {
      type: 'string',
      enum: ['memory', 'redis'],
      default: 'memory',
      description:
        '`memory`: in the process, bounded by `max_keys`, checkpointed with the pipeline (exactly once across ' +
        'restarts). `redis`: keys in Redis (`SET NX PX`, pipelined per batch), shared by every instance naming the ' +
        'same server and key prefix.',
      examples: ['memory', 'redis'],
    },
    redis: {
      type: 'string',
      minLength: 1,
      description: 'With `store: redis`, the name of a `redis` resource under `spec.resources`.',
      examples: ['cache'],
    },
    max_keys: {
      type: 'integer',
      minimum: 1,
      default: 1000000,
      description: 'The memory store holds at most this many keys; a new key beyond it is the store being full.',
      examples: [1000000],
    },
    on_store_unavailable: {
      type: 'string',
      enum: ['wait', 'pass', 'fail'],
      default: 'wait',
      description:
        'When the memory store is full, or Redis is not connected or does not answer within `timeout_seconds`: ' +
        '`wait` (hold the batch ' +
        'until a key expires or Redis answers: backpressure), `pass` (let the records through unchecked and ' +
        'unremembered: duplicates may pass, nothing is dropped), `fail` (fail the batch: the stage\u2019s ' +
        '`on_error` applies).',
      examples: ['wait', 'pass'],
    },
    local_cache_keys: {
      type: 'integer',
      minimum: 0,
      default: 0,
      description:
        'With `store: redis`, how many of the keys this run set in Redis it also remembers in memory (until a ' +
        'little before Redis expires them), so that their repeats are dropped without a round trip: less work ' +
        'for a Redis server many instances share, more CPU and memory for this one; 0: none. Keys other ' +
        'instances set are always asked of Redis.',
      examples: [0, 100000],
    },
    timeout_seconds: {
      type: 'number',
      exclusiveMinimum: 0,
      default: 5,
      description: 'With `store: redis`, how long a batch\u2019s round trip may take before Redis counts as down.',
      examples: [5],
    },
  },
} as const;

export type DedupeOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
