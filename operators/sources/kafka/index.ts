import { defineSource } from '../../../engine/operator.ts';
import { RAW_LINE_SCHEMA } from '../../../engine/record-schema.ts';
import { kafkaConnectionProblems } from '../../shared/kafka-options.ts';
import { type KafkaSourceOptions, schema } from './schema.ts';

const defaults = {
  brokers: ['127.0.0.1:9092'],
  client_id: 'etl',
  ssl: false,
  connect_timeout_seconds: 10,
  from_beginning: true,
  session_timeout_seconds: 30,
  max_bytes_per_partition: 1048576,
} as const satisfies Omit<KafkaSourceOptions, 'topics' | 'group_id'>;

export default defineSource<typeof schema, KafkaSourceOptions>({
  type: 'kafka',
  stability: 'alpha',
  summary: 'Reads Kafka topics in a consumer group; positions per partition, stored with the data in PostgreSQL',
  schema,
  outputs: { default: 'raw' },
  outputSchemas: () => ({ default: RAW_LINE_SCHEMA }),
  examples: [
    { ...defaults, topics: ['access-logs'], group_id: 'etl-loader' },
    {
      ...defaults,
      brokers: ['kafka-1:9093', 'kafka-2:9093'],
      client_id: 'etl-edge',
      ssl: true,
      sasl_mechanism: 'scram-sha-512',
      username: 'etl',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the example shows the interpolation syntax
      password: '${secret:KAFKA_PASSWORD}',
      topics: ['nginx-access', 'haproxy-access'],
      group_id: 'etl-edge',
      from_beginning: false,
    },
  ],
  // A topic has no end: a stop request is how the pipeline ends.
  unbounded: () => true,
  validate: (options) => kafkaConnectionProblems(options),
  create: async (options, ctx) => (await import('./kafka.ts')).createKafkaSource(options, ctx),
});
