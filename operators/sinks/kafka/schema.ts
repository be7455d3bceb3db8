import type { FromSchema } from 'json-schema-to-ts';
import { kafkaConnectionProperties } from '../../shared/kafka-options.ts';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/sinks/kafka.json',
  type: 'object',
  additionalProperties: false,
  required: ['topic'],
  description:
    'Produces each record to a Kafka topic (the record as JSON, or one field), keyed by a field so that records ' +
    'with the same key keep their order in one partition. Batches are compressed, the producer is idempotent, and ' +
    'each message carries headers with the trace context (`traceparent`) and where the record was read ' +
    '(`etl-origin`). `write` resolves once the brokers acknowledged every message (acks from all in-sync replicas).',
  properties: {
    ...kafkaConnectionProperties,
    topic: {
      type: 'string',
      minLength: 1,
      pattern: '^[A-Za-z0-9._-]+$',
      description: 'The topic to produce to; it must exist (or the cluster must create topics on first use).',
      examples: ['parsed-access-logs'],
    },
    key_field: {
      type: 'string',
      minLength: 1,
      description:
        'The field whose value is the message key (text; numbers as digits, other values as JSON): the partition ' +
        'follows it. A record without it is dead-lettered. Absent: no key (the producer spreads the messages).',
      examples: ['client_ip'],
    },
    payload_field: {
      type: 'string',
      minLength: 1,
      description: "Produce only this field's value as the message (text as is). Absent: the whole record as JSON.",
      examples: ['message'],
    },
    compression: {
      type: 'string',
      enum: ['none', 'gzip'],
      default: 'gzip',
      description: 'Compression of each batch of messages on the wire and in the log.',
      examples: ['none'],
    },
    idempotent: {
      type: 'boolean',
      default: true,
      description:
        'Idempotent producer: a send the client retries is written once. Needs a broker that hands out producer ids ' +
        '(any Kafka ≥ 0.11); acknowledgements then come from all in-sync replicas.',
      examples: [false],
    },
    max_message_bytes: {
      type: 'integer',
      minimum: 1,
      default: 1000000,
      description:
        'Largest message (value, key and headers) sent; a larger record is dead-lettered rather than failing its ' +
        "batch. Keep it at or below the topic's `max.message.bytes`.",
      examples: [1000000],
    },
    timeout_seconds: {
      type: 'number',
      exclusiveMinimum: 0,
      default: 30,
      description: 'How long the brokers may take to acknowledge a batch before the send is tried again.',
      examples: [30],
    },
  },
} as const;

export type KafkaSinkOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
