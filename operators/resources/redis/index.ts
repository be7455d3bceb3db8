import { defineResource } from '../../../engine/operator.ts';
import { type RedisResourceOptions, schema } from './schema.ts';

export default defineResource<typeof schema, RedisResourceOptions, unknown>({
  type: 'redis',
  stability: 'beta',
  summary: 'A Redis connection stages share (dedupe store, cache, session state)',
  schema,
  examples: [
    { url: 'redis://127.0.0.1:6379', key_prefix: '', connect_timeout_seconds: 10 },
    { url: 'redis://127.0.0.1:6379/2', key_prefix: 'etl:web:', connect_timeout_seconds: 5 },
  ],
  open: async (options, ctx) => (await import('./redis.ts')).openRedis(options, ctx),
});
