import { defineSource, type OptionProblem } from '../../../engine/operator.ts';
import { RAW_LINE_SCHEMA, type RecordSchema } from '../../../engine/record-schema.ts';
import { type GeneratorSourceOptions, schema } from './schema.ts';

/** Generated lines are never cut: `message` only. */
const lineSchema: RecordSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['message'],
  properties: { message: RAW_LINE_SCHEMA.properties.message },
};

export default defineSource<typeof schema, GeneratorSourceOptions>({
  type: 'generator',
  stability: 'beta',
  summary: 'Generates synthetic, seedable web access log lines (for examples, tests and benchmarks)',
  schema,
  outputs: { default: 'raw' },
  outputSchemas: () => ({ default: lineSchema }),
  examples: [
    {
      format: 'nginx_combined',
      count: 1000000,
      seed: 1,
      malformed_ratio: 0.01,
      start_time: '2026-01-01T00:00:00Z',
      with_sequence: false,
    },
    {
      format: 'nginx_json',
      rate_per_second: 200,
      seed: 42,
      malformed_ratio: 0,
      start_time: 'now',
      with_sequence: true,
    },
  ],
  validate(options): OptionProblem[] {
    if (options.start_time !== 'now' && !Number.isFinite(Date.parse(options.start_time))) {
      return [
        {
          path: ['start_time'],
          message: `start_time is neither an ISO-8601 date-time nor "now": ${options.start_time}`,
          hint: 'for example 2026-01-01T00:00:00Z',
        },
      ];
    }
    return [];
  },
  unbounded: (options) => options.count === undefined,
  create: async (options, ctx) => (await import('./generator.ts')).createGeneratorSource(options, ctx),
});
