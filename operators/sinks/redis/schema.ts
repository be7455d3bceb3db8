import type { FromSchema } from 'json-schema-to-ts';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/sinks/redis.json',
  type: 'object',
  additionalProperties: false,
  required: ['redis', 'mode', 'key'],
  description:
    'Writes records to Redis through a shared `redis` resource: stream entries (XADD with MAXLEN), hashes, ' +
    'sorted-set counters (ZINCRBY, for a live top-N) or pub/sub messages; one MULTI/EXEC pipeline per batch.',
  properties: {
    redis: {
      type: 'string',
      minLength: 1,
      description: 'The name of a `redis` resource under `spec.resources`.',
      examples: ['cache'],
    },
    mode: {
      type: 'string',
      enum: ['stream', 'hash', 'zincrby', 'publish'],
      description:
        '`stream`: XADD one entry per record (its fields). `hash`: HSET the record\u2019s fields into the key. ' +
        '`zincrby`: ZINCRBY the key\u2019s `member` by `increment_field` (or 1). `publish`: PUBLISH the record as ' +
        'JSON on the channel named by the key.',
      examples: ['stream', 'hash'],
    },
    key: {
      type: 'string',
      minLength: 1,
      description:
        'The key (stream, hash, sorted set) or channel, a template: `{field}` is the field\u2019s value, `{{` and ' +
        '`}}` are literal braces; e.g. `web:{vhost}:{path}`. A record without one of the fields goes to dead_letter.',
      examples: ['web:requests', 'web:{vhost}:{path}'],
    },
    key_escape: {
      type: 'string',
      enum: ['none', 'percent'],
      default: 'none',
      description:
        '`none`: values go into the key as they are. `percent`: each value is percent-encoded (`:` becomes ' +
        '`%3A`, `{` `%7B`\u2026), so that a value holding the separator cannot make two keys alike.',
      examples: ['none', 'percent'],
    },
    fields: {
      type: 'array',
      minItems: 1,
      items: { type: 'string', minLength: 1 },
      description: '`stream` and `hash`: the fields written (default: every field of the record).',
      examples: [['client_ip', 'path', 'status']],
    },
    max_len: {
      type: 'integer',
      minimum: 1,
      default: 1000000,
      description: '`stream`: MAXLEN ~ (approximate trimming): the stream keeps about this many entries.',
      examples: [1000000],
    },
    member: {
      type: 'string',
      minLength: 1,
      description: '`zincrby`: the member, a template like `key` (e.g. `{path}`).',
      examples: ['{path}'],
    },
    increment_field: {
      type: 'string',
      minLength: 1,
      description: '`zincrby`: the numeric field to add (e.g. `bytes`); default: 1 per record.',
      examples: ['bytes'],
    },
    ttl_seconds: {
      type: 'number',
      exclusiveMinimum: 0,
      description: '`stream`, `hash`, `zincrby`: PEXPIRE each key written, so that keys per client or path expire.',
      examples: [86400],
    },
    warn_after_seconds: {
      type: 'number',
      exclusiveMinimum: 0,
      default: 5,
      description: 'A batch Redis has not answered for this long is logged as waiting (the pipeline is held).',
      examples: [5],
    },
  },
} as const;

export type RedisSinkOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
