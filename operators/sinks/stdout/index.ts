import { defineSink } from '../../../engine/operator.ts';
import { type StdoutSinkOptions, schema } from './schema.ts';

export default defineSink<typeof schema, StdoutSinkOptions>({
  type: 'stdout',
  stability: 'beta',
  summary: 'Writes records to standard output as JSON lines or text',
  schema,
  accepts: ['any'],
  examples: [{ format: 'jsonl' }, { format: 'text' }],
  create: async (options, ctx) => (await import('./stdout.ts')).createStdoutSink(options, ctx),
});
