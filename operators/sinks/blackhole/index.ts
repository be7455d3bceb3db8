import { defineSink } from '../../../engine/operator.ts';
import { type BlackholeSinkOptions, schema } from './schema.ts';

export default defineSink<typeof schema, BlackholeSinkOptions>({
  type: 'blackhole',
  stability: 'stable',
  summary: 'Counts records and drops them (benchmarks, dry runs of everything upstream)',
  schema,
  accepts: ['any'],
  examples: [{}, { print_interval_seconds: 5 }],
  create: async (options, ctx) => (await import('./blackhole.ts')).createBlackholeSink(options, ctx),
});
