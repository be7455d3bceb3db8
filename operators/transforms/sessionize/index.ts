import { defineTransform, type OptionProblem, type ResourceUse } from '../../../engine/operator.ts';
import { type RecordSchema, withFields } from '../../../engine/record-schema.ts';
import { type SessionizeOptions, schema } from './schema.ts';

const defaults = {
  key_fields: [...schema.properties.key_fields.default],
  time_field: schema.properties.time_field.default,
  gap_seconds: schema.properties.gap_seconds.default,
  max_out_of_order_seconds: schema.properties.max_out_of_order_seconds.default,
  max_sessions: schema.properties.max_sessions.default,
  store: schema.properties.store.default,
};

/** The fields sessionize adds; null on records it could not place (no time, or later than the bound). */
export const SESSION_FIELDS = {
  session_id: {
    type: ['string', 'null'],
    pattern: '^[0-9a-f]{32}$',
    description:
      'The session: 32 hex digits of SHA-256 over the key and the session start, the same on every run over the ' +
      'same records. Null for a record without a time or later than max_out_of_order_seconds.',
  },
  session_seq: {
    type: ['integer', 'null'],
    minimum: 1,
    description: 'The record’s number within its session, from 1, in the order records arrived.',
  },
  session_start: {
    type: ['string', 'null'],
    format: 'date-time',
    description: 'Event time of the session’s first record, ISO-8601 UTC with milliseconds.',
  },
} as const;

export default defineTransform<typeof schema, SessionizeOptions>({
  type: 'sessionize',
  stability: 'alpha',
  summary: 'Sessions per visitor (client IP + user agent) with an inactivity gap: session id, sequence and start',
  schema,
  accepts: ['access'],
  outputs: { default: 'access' },
  // Adds its fields to the records themselves.
  changesRecords: true,
  outputSchemas(_options, input): Readonly<Record<string, RecordSchema>> {
    return { default: withFields(input, SESSION_FIELDS, Object.keys(SESSION_FIELDS)) };
  },
  fields(options) {
    return [
      ...options.key_fields.map((field, i) => ({ path: ['key_fields', i], field })),
      { path: ['time_field'], field: options.time_field },
    ];
  },
  examples: [
    defaults,
    { ...defaults, key_fields: ['user'], gap_seconds: 900, max_out_of_order_seconds: 300, max_sessions: 100000 },
    { ...defaults, store: 'redis', redis: 'sessions' },
  ],
  uses(options): ResourceUse[] {
    return options.store === 'redis' && options.redis !== undefined
      ? [{ path: ['redis'], name: options.redis, type: 'redis' }]
      : [];
  },
  validate(options) {
    const problems: OptionProblem[] = [];
    if (options.max_out_of_order_seconds > options.gap_seconds) {
      problems.push({
        path: ['max_out_of_order_seconds'],
        message: `max_out_of_order_seconds (${options.max_out_of_order_seconds}) is more than gap_seconds (${options.gap_seconds})`,
        hint: 'a record may arrive at most one gap out of order; raise gap_seconds or lower this',
      });
    }
    if (options.store === 'redis' && options.redis === undefined) {
      problems.push({
        path: ['store'],
        message: '`store: redis` needs `redis`, the name of a redis resource under spec.resources',
        hint: 'add `redis: sessions` and declare `sessions: { type: redis, url: … }` under spec.resources',
      });
    }
    if (options.store === 'memory' && options.redis !== undefined) {
      problems.push({ path: ['redis'], message: '`redis` is used with `store: redis` only', severity: 'warning' });
    }
    return problems;
  },
  create: async (options, ctx) => new (await import('./sessionize.ts')).SessionizeTransform(options, ctx),
});
