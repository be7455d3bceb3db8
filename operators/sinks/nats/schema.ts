import type { FromSchema } from 'json-schema-to-ts';
import { natsConnectionProperties } from '../../shared/nats-options.ts';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/sinks/nats.json',
  type: 'object',
  additionalProperties: false,
  required: ['subject'],
  description:
    'Publishes each record to NATS JetStream (as JSON, or one field as the payload) and waits for the stream to ' +
    'store it. Each message carries a `Nats-Msg-Id` (from `message_id`, or from the record\u2019s origin), so that ' +
    'what a rerun after a crash publishes again is dropped by the stream\u2019s de-duplication.',
  properties: {
    ...natsConnectionProperties,
    subject: {
      type: 'string',
      minLength: 1,
      description:
        'The subject, a template: `{field}` is the field\u2019s value, `{{` and `}}` are literal braces; e.g. ' +
        '`logs.access.{vhost}`. A stream must hold the subject. A record lacking a field, or whose subject is not ' +
        'a valid subject (empty token, white space, wildcard), goes to dead_letter.',
      examples: ['logs.access', 'logs.access.{vhost}'],
    },
    payload_field: {
      type: 'string',
      minLength: 1,
      description:
        'Publish this field\u2019s value as the payload (a string as it is, anything else as JSON) instead of the ' +
        'whole record as JSON; e.g. `message` to pass raw lines on. A record without it goes to dead_letter.',
      examples: ['message'],
    },
    message_id: {
      type: 'string',
      minLength: 1,
      description:
        'The `Nats-Msg-Id` header, a template like `subject` (e.g. `{request_id}`). Absent: made from the ' +
        'record\u2019s origin (pipeline, source, file, byte offset or stream sequence, line), the same each time the ' +
        'same input is read again; a record without an origin (an aggregate\u2019s row) is then published without ' +
        'an id (counted, and warned about once).',
      examples: ['{request_id}'],
    },
    publish_timeout_seconds: {
      type: 'number',
      exclusiveMinimum: 0,
      default: 10,
      description: 'How long to wait for the stream\u2019s acknowledgement of one publish before trying it again.',
      examples: [10],
    },
    max_pending_publishes: {
      type: 'integer',
      minimum: 1,
      maximum: 65536,
      default: 1024,
      description: 'Publishes awaiting their acknowledgement at once, within a batch.',
      examples: [1024],
    },
    max_outage_seconds: {
      type: 'number',
      exclusiveMinimum: 0,
      description:
        'How long publishes may keep failing for want of a server or a stream (timeouts, no responders) before the ' +
        'run fails; meanwhile the batch is retried with backoff and the pipeline waits. Absent: wait as long as it ' +
        'takes.',
      examples: [600],
    },
  },
} as const;

export type NatsSinkOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
