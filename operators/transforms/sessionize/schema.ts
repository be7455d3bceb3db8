import type { FromSchema } from 'json-schema-to-ts';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/transforms/sessionize.json',
  type: 'object',
  additionalProperties: false,
  description:
    'Groups records into sessions per key with an inactivity gap, and adds `session_id`, `session_seq` and ' +
    '`session_start` to each record.',
  properties: {
    key_fields: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'string',
        minLength: 1,
        description: 'A field of the records (dotted for a path into an object).',
      },
      default: ['client_ip', 'user_agent'],
      description: 'The fields whose values together identify a visitor; a session belongs to one key.',
      examples: [['client_ip', 'user_agent'], ['user']],
    },
    time_field: {
      type: 'string',
      minLength: 1,
      default: 'timestamp',
      description:
        'The event-time field: an ISO-8601 text (as `parse` emits `timestamp`), or epoch milliseconds. Sessions ' +
        'follow event time, never the time records are processed.',
      examples: ['timestamp'],
    },
    gap_seconds: {
      type: 'number',
      exclusiveMinimum: 0,
      default: 1800,
      description:
        'Inactivity gap: a record more than this after the last record of its key (in event time) starts a new session.',
      examples: [1800],
    },
    max_out_of_order_seconds: {
      type: 'number',
      minimum: 0,
      default: 60,
      description:
        'How far behind the greatest event time seen so far a record may arrive and still be sessionized. An older ' +
        'record passes on with null session fields and is counted (`etl_sessionize_late_records_total`). At most ' +
        '`gap_seconds`.',
      examples: [60],
    },
    max_sessions: {
      type: 'integer',
      minimum: 1,
      default: 500000,
      description:
        'Open sessions held at most. Past it, the least recently active tenth is evicted; an evicted key that ' +
        'returns starts a new session.',
      examples: [500000],
    },
    store: {
      type: 'string',
      enum: ['memory', 'redis'],
      default: 'memory',
      description:
        "`memory`: sessions in the stage's checkpointed state, one instance. `redis`: sessions in Redis, shared by " +
        "every instance of the pipeline that uses the same server (a visitor's session goes on whichever instance " +
        'sees its next request); keys expire gap_seconds + max_out_of_order_seconds after their last record.',
      examples: ['memory', 'redis'],
    },
    redis: {
      type: 'string',
      minLength: 1,
      description: 'With `store: redis`: the name of a `redis` resource under spec.resources.',
      examples: ['sessions'],
    },
  },
} as const;

export type SessionizeOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
