import { defineSource, type OptionProblem } from '../../../engine/operator.ts';
import { RAW_LINE_SCHEMA } from '../../../engine/record-schema.ts';
import { type FileSourceOptions, schema } from './schema.ts';

const defaults = {
  exclude: [],
  follow: false,
  start_at: 'beginning',
  poll_interval_ms: 250,
  max_line_bytes: 65536,
  partial_line_timeout_ms: 5000,
  rotate_wait_ms: 5000,
  max_open_files: 256,
  fingerprint_bytes: 256,
} as const satisfies Omit<FileSourceOptions, 'paths'>;

export default defineSource<typeof schema, FileSourceOptions>({
  type: 'file',
  stability: 'stable',
  summary: 'Reads lines from files matched by globs (plain or gzip), once or following them through rotation',
  schema,
  outputs: { default: 'raw' },
  // Lines longer than max_line_bytes are cut and marked `truncated: true`.
  outputSchemas: () => ({ default: RAW_LINE_SCHEMA }),
  examples: [
    { ...defaults, paths: ['logs/*.log', 'logs/*.log.gz'] },
    { ...defaults, paths: ['/var/log/nginx/access.log*'], exclude: ['*.gz'], follow: true, start_at: 'end' },
  ],
  unbounded: (options) => options.follow,
  validate(options): OptionProblem[] {
    if (options.start_at === 'end' && !options.follow) {
      return [
        {
          path: ['start_at'],
          severity: 'warning',
          message: 'start_at: end without follow reads nothing from the files found at the first start',
          hint: 'set follow: true to tail the files, or remove start_at',
        },
      ];
    }
    return [];
  },
  create: async (options, ctx) => (await import('./file.ts')).createFileSource(options, ctx),
});
