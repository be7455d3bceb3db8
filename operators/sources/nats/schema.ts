import type { FromSchema } from 'json-schema-to-ts';
import { natsConnectionProperties } from '../../shared/nats-options.ts';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/sources/nats.json',
  type: 'object',
  additionalProperties: false,
  required: ['stream', 'consumer'],
  description:
    'Reads messages from a NATS JetStream stream through a durable pull consumer; each message becomes ' +
    '`{ message }` (its payload as text) with its stream sequence, subject and delivery count in the origin. A ' +
    'message is acknowledged only once the checkpoint holding it has committed in every sink; several `etl` ' +
    'processes on the same consumer share the messages. The broker keeps the position (its ack floor): the ' +
    'checkpoint records the last sequence read, for information, and nothing is resumed from it.',
  properties: {
    ...natsConnectionProperties,
    stream: {
      type: 'string',
      minLength: 1,
      pattern: '^[^.*> \\t]+$',
      description: 'The JetStream stream to read; it must exist.',
      examples: ['ACCESS_LOGS'],
    },
    consumer: {
      type: 'string',
      minLength: 1,
      pattern: '^[^.*> \\t]+$',
      description:
        'Durable name of the pull consumer. Every `etl` process given the same name shares its messages: each ' +
        'message goes to one of them.',
      examples: ['etl'],
    },
    create_consumer: {
      type: 'boolean',
      default: false,
      description:
        'Create the consumer when it does not exist (explicit acks, with `filter_subject`, `deliver`, ' +
        '`ack_wait_seconds` and `max_ack_pending`). false: a missing consumer fails the start, naming it.',
      examples: [true],
    },
    filter_subject: {
      type: 'string',
      minLength: 1,
      description:
        'With `create_consumer`: only messages on these subjects (wildcards `*`, `>`). Absent: all the stream.',
      examples: ['logs.access.>'],
    },
    deliver: {
      type: 'string',
      enum: ['all', 'new'],
      default: 'all',
      description:
        'With `create_consumer`: where a new consumer starts: `all` (the first message the stream holds) or `new` ' +
        '(messages published from now on).',
      examples: ['all', 'new'],
    },
    ack_wait_seconds: {
      type: 'number',
      minimum: 1,
      default: 30,
      description:
        'With `create_consumer`: how long the server waits for an ack before delivering a message again. The ' +
        'source marks the messages it holds as in progress while they wait for a checkpoint, so this only has to ' +
        'cover a process that died: its messages go to the others after it.',
      examples: [30],
    },
    max_ack_pending: {
      type: 'integer',
      minimum: 1,
      default: 100000,
      description:
        'With `create_consumer`: messages delivered and not yet acknowledged, over all the processes sharing the ' +
        'consumer, before the server sends no more. Messages are acknowledged once per checkpoint, so this bounds ' +
        'throughput to about `max_ack_pending` per `checkpoint_interval_seconds`.',
      examples: [100000],
    },
  },
} as const;

export type NatsSourceOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
