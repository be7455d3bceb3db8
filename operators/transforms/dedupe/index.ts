import type { FieldUse, OptionProblem, ResourceUse } from '../../../engine/operator.ts';
import { defineTransform } from '../../../engine/operator.ts';
import { type DedupeOptions, schema } from './schema.ts';

const defaults = {
  window_seconds: schema.properties.window_seconds.default,
  time: schema.properties.time.default,
  time_field: schema.properties.time_field.default,
  store: schema.properties.store.default,
  max_keys: schema.properties.max_keys.default,
  on_store_unavailable: schema.properties.on_store_unavailable.default,
  timeout_seconds: schema.properties.timeout_seconds.default,
  local_cache_keys: schema.properties.local_cache_keys.default,
} as const;

export default defineTransform<typeof schema, DedupeOptions>({
  type: 'dedupe',
  stability: 'beta',
  summary: 'Drop duplicate records (by key fields or the whole record) within a time window, in memory or Redis',
  schema,
  accepts: ['any'],
  outputs: { default: 'any' },
  // Records pass unchanged, or not at all.
  outputSchemas: (_options, input) => ({ default: input }),
  examples: [
    { ...defaults, fields: ['client_ip', 'path', 'status'], window_seconds: 60 },
    { ...defaults },
    { ...defaults, fields: ['request_id'], time: 'event', on_store_unavailable: 'pass' },
    { ...defaults, fields: ['request_id'], store: 'redis', redis: 'cache', on_store_unavailable: 'wait' },
  ],
  fields(options): FieldUse[] {
    const uses: FieldUse[] = (options.fields ?? []).map((field, i) => ({ path: ['fields', i], field }));
    if (options.time === 'event') uses.push({ path: ['time_field'], field: options.time_field });
    return uses;
  },
  uses(options): ResourceUse[] {
    return options.store === 'redis' && options.redis !== undefined
      ? [{ path: ['redis'], name: options.redis, type: 'redis' }]
      : [];
  },
  validate(options): OptionProblem[] {
    const problems: OptionProblem[] = [];
    if (options.store === 'redis' && options.redis === undefined) {
      problems.push({
        path: ['store'],
        message: '`store: redis` needs `redis`, the name of a redis resource under spec.resources',
        hint: 'add `redis: cache` and declare `cache: { type: redis, url: … }` under spec.resources',
      });
    }
    if (options.store === 'redis' && options.time === 'event') {
      problems.push({
        path: ['time'],
        message: 'the Redis store expires keys on the server\u2019s clock: `time: event` needs `store: memory`',
      });
    }
    if (options.store === 'memory' && options.time === 'event' && options.on_store_unavailable === 'wait') {
      problems.push({
        path: ['on_store_unavailable'],
        message:
          'with `time: event`, keys expire as the watermark moves, which a waiting batch stops: a full store ' +
          'cannot be waited for',
        hint: 'choose `on_store_unavailable: pass` (duplicates may pass when full) or `fail`',
      });
    }
    if (options.store === 'memory' && options.redis !== undefined) {
      problems.push({ path: ['redis'], message: '`redis` is used with `store: redis` only', severity: 'warning' });
    }
    return problems;
  },
  create: async (options, ctx) => (await import('./dedupe.ts')).createDedupe(options, ctx),
});
