import { defineSink, type FieldUse } from '../../../engine/operator.ts';
import { kafkaConnectionProblems } from '../../shared/kafka-options.ts';
import { type KafkaSinkOptions, schema } from './schema.ts';

const defaults = {
  brokers: ['127.0.0.1:9092'],
  client_id: 'etl',
  ssl: false,
  connect_timeout_seconds: 10,
  compression: 'gzip',
  idempotent: true,
  max_message_bytes: 1000000,
  timeout_seconds: 30,
} as const satisfies Omit<KafkaSinkOptions, 'topic'>;

export default defineSink<typeof schema, KafkaSinkOptions>({
  type: 'kafka',
  stability: 'alpha',
  summary: 'Produces records to a Kafka topic: keyed, compressed, idempotent, with trace and origin headers',
  schema,
  accepts: ['raw', 'access', 'error_log', 'dead_letter', 'any'],
  concurrent: true,
  examples: [
    { ...defaults, topic: 'parsed-access-logs', key_field: 'client_ip' },
    { ...defaults, brokers: ['kafka-1:9092', 'kafka-2:9092'], topic: 'raw-lines', payload_field: 'message' },
  ],
  fields(options): FieldUse[] {
    const uses: FieldUse[] = [];
    if (options.key_field !== undefined) uses.push({ path: ['key_field'], field: options.key_field });
    if (options.payload_field !== undefined) uses.push({ path: ['payload_field'], field: options.payload_field });
    return uses;
  },
  validate: (options) => kafkaConnectionProblems(options),
  create: async (options, ctx) => (await import('./kafka.ts')).createKafkaSink(options, ctx),
});
