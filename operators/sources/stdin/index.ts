import { defineSource } from '../../../engine/operator.ts';
import { type StdinSourceOptions, schema } from './schema.ts';
import { createStdinSource } from './stdin.ts';

export default defineSource<typeof schema, StdinSourceOptions>({
  type: 'stdin',
  stability: 'stable',
  summary: 'Reads lines from standard input until it ends',
  schema,
  outputs: { default: 'raw' },
  examples: [{ max_line_bytes: 65536 }, { max_line_bytes: 1048576 }],
  create: (options, ctx) => createStdinSource(options, ctx),
});
