import { defineSource } from '../../../engine/operator.ts';
import { RAW_LINE_SCHEMA } from '../../../engine/record-schema.ts';
import { s3ConnectionProblems } from '../../shared/s3-options.ts';
import { type S3SourceOptions, schema } from './schema.ts';

const defaults = {
  prefix: '',
  force_path_style: false,
  max_attempts: 5,
  follow: false,
  poll_interval_seconds: 30,
  late_arrival_seconds: 900,
  compression: 'auto',
  max_line_bytes: 65536,
} as const satisfies Omit<S3SourceOptions, 'bucket'>;

export default defineSource<typeof schema, S3SourceOptions>({
  type: 's3',
  stability: 'alpha',
  summary: 'Reads the objects of an S3 bucket under a prefix as lines (plain or gzip), once or polling for new ones',
  schema,
  outputs: { default: 'raw' },
  outputSchemas: () => ({ default: RAW_LINE_SCHEMA }),
  examples: [
    { ...defaults, bucket: 'access-logs', prefix: 'nginx/2026/12/' },
    {
      ...defaults,
      bucket: 'access-logs',
      prefix: 'nginx/',
      endpoint: 'http://127.0.0.1:9000',
      force_path_style: true,
      follow: true,
      poll_interval_seconds: 60,
    },
  ],
  unbounded: (options) => options.follow,
  validate: (options) => {
    const problems = s3ConnectionProblems(options);
    if (!options.follow && options.poll_interval_seconds !== defaults.poll_interval_seconds) {
      problems.push({
        path: ['poll_interval_seconds'],
        message: 'poll_interval_seconds applies only with follow: true',
        hint: 'set `follow: true` or remove it',
      });
    }
    return problems.map((problem) =>
      problem.path[0] === 'poll_interval_seconds' ? { ...problem, severity: 'warning' as const } : problem,
    );
  },
  create: async (options, ctx) => (await import('./s3.ts')).createS3Source(options, ctx),
});
