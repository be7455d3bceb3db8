import { defineSource, type OptionProblem } from '../../../engine/operator.ts';
import { RAW_LINE_SCHEMA } from '../../../engine/record-schema.ts';
import { type NatsSourceOptions, schema } from './schema.ts';

const defaults = {
  servers: ['nats://127.0.0.1:4222'],
  connect_timeout_seconds: 10,
  create_consumer: false,
  deliver: 'all',
  ack_wait_seconds: 30,
  max_ack_pending: 100000,
} as const satisfies Omit<NatsSourceOptions, 'stream' | 'consumer'>;

export default defineSource<typeof schema, NatsSourceOptions>({
  type: 'nats',
  stability: 'beta',
  summary: 'Reads messages from a NATS JetStream durable pull consumer, acknowledged once committed downstream',
  schema,
  outputs: { default: 'raw' },
  outputSchemas: () => ({ default: RAW_LINE_SCHEMA }),
  examples: [
    { ...defaults, stream: 'ACCESS_LOGS', consumer: 'etl' },
    {
      ...defaults,
      servers: ['nats://nats-1:4222', 'nats://nats-2:4222'],
      stream: 'ACCESS_LOGS',
      consumer: 'etl-loader',
      create_consumer: true,
      filter_subject: 'logs.access.>',
    },
  ],
  // A queue has no end: a stop request is how the pipeline ends.
  unbounded: () => true,
  validate(options): OptionProblem[] {
    const problems: OptionProblem[] = [];
    if (!options.create_consumer) {
      for (const key of ['filter_subject'] as const) {
        if (options[key] !== undefined) {
          problems.push({
            path: [key],
            severity: 'warning',
            message: `${key} applies only when the source creates the consumer (create_consumer: true)`,
            hint: 'the existing consumer keeps its own configuration',
          });
        }
      }
    }
    if (options.password !== undefined && options.user === undefined) {
      problems.push({ path: ['password'], message: 'password without user', hint: 'add `user`' });
    }
    return problems;
  },
  create: async (options, ctx) => (await import('./nats.ts')).createNatsSource(options, ctx),
});
