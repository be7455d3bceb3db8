import type { FromSchema } from 'json-schema-to-ts';

export const schema = {
  $id: 'https://etl.dev/schemas/resources/redis.json',
  type: 'object',
  additionalProperties: false,
  description: 'A Redis connection (ioredis) that stages share: a dedupe store, an enrichment cache, session state.',
  properties: {
    url: {
      type: 'string',
      minLength: 1,
      default: 'redis://127.0.0.1:6379',
      description: '`redis://[user:password@]host:port[/db]` or `rediss://` for TLS.',
      examples: ['redis://127.0.0.1:6379/0', 'rediss://cache.internal:6380'],
    },
    key_prefix: {
      type: 'string',
      default: '',
      description: 'Prepended to every key the stages use, so that several pipelines share one server apart.',
      examples: ['etl:web:'],
    },
    connect_timeout_seconds: {
      type: 'number',
      exclusiveMinimum: 0,
      default: 10,
      description: 'How long the start waits for the server before it fails with a clear message.',
      examples: [10],
    },
  },
} as const;

export type RedisResourceOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
