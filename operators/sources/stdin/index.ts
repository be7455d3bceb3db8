import { defineSource } from '../../../engine/operator.ts';
import { RAW_LINE_SCHEMA } from '../../../engine/record-schema.ts';
import { type StdinSourceOptions, schema } from './schema.ts';

export default defineSource<typeof schema, StdinSourceOptions>({
  type: 'stdin',
  stability: 'stable',
  summary: 'Reads lines from standard input until it ends',
  schema,
  outputs: { default: 'raw' },
  // Lines longer than max_line_bytes are cut and marked `truncated: true`.
  outputSchemas: () => ({ default: RAW_LINE_SCHEMA }),
  examples: [{ max_line_bytes: 65536 }, { max_line_bytes: 1048576 }],
  create: async (options, ctx) => (await import('./stdin.ts')).createStdinSource(options, ctx),
});
