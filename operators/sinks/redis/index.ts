import type { FieldUse, OptionProblem } from '../../../engine/operator.ts';
import { defineSink } from '../../../engine/operator.ts';
import { type RedisSinkOptions, schema } from './schema.ts';
import { parseTemplate } from '../../shared/template.ts';

const defaults = {
  key_escape: schema.properties.key_escape.default,
  max_len: schema.properties.max_len.default,
  warn_after_seconds: schema.properties.warn_after_seconds.default,
} as const;

function templateFields(text: string | undefined, path: string): FieldUse[] {
  if (text === undefined) return [];
  try {
    return parseTemplate(text).fields.map((field) => ({ path: [path], field }));
  } catch {
    return []; // reported by validate
  }
}

export default defineSink<typeof schema, RedisSinkOptions>({
  type: 'redis',
  stability: 'alpha',
  summary: 'Write records to Redis: stream entries, hashes, sorted-set counters (top-N) or pub/sub messages',
  schema,
  accepts: ['any'],
  concurrent: true,
  examples: [
    { ...defaults, redis: 'cache', mode: 'stream', key: 'web:requests', max_len: 100000 },
    { ...defaults, redis: 'cache', mode: 'hash', key: 'web:client:{client_ip}', fields: ['user_agent', 'status'] },
    { ...defaults, redis: 'cache', mode: 'zincrby', key: 'web:top:{vhost}', member: '{path}', ttl_seconds: 86400 },
    { ...defaults, redis: 'cache', mode: 'publish', key: 'web:live' },
  ],
  uses: (options) => [{ path: ['redis'], name: options.redis, type: 'redis' }],
  fields(options): FieldUse[] {
    return [
      ...templateFields(options.key, 'key'),
      ...templateFields(options.member, 'member'),
      ...(options.fields ?? []).map((field, i) => ({ path: ['fields', i], field })),
      ...(options.increment_field === undefined ? [] : [{ path: ['increment_field'], field: options.increment_field }]),
    ];
  },
  validate(options): OptionProblem[] {
    const problems: OptionProblem[] = [];
    for (const path of ['key', 'member'] as const) {
      const text = options[path];
      if (text === undefined) continue;
      try {
        parseTemplate(text);
      } catch (error) {
        problems.push({ path: [path], message: (error as Error).message });
      }
    }
    if (options.mode === 'zincrby' && options.member === undefined) {
      problems.push({
        path: ['mode'],
        message: '`mode: zincrby` needs `member`, the sorted set\u2019s member (a template such as `{path}`)',
      });
    }
    const only = (option: keyof RedisSinkOptions, modes: readonly string[]) => {
      if (options[option] !== undefined && !modes.includes(options.mode)) {
        problems.push({
          path: [option],
          message: `\`${option}\` is used with mode ${modes.join(' or ')} only`,
          severity: 'warning',
        });
      }
    };
    only('member', ['zincrby']);
    only('increment_field', ['zincrby']);
    only('fields', ['stream', 'hash']);
    only('ttl_seconds', ['stream', 'hash', 'zincrby']);
    return problems;
  },
  create: async (options, ctx) => (await import('./redis.ts')).createRedisSink(options, ctx),
});
