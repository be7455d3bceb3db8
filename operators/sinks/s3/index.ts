import { defineSink, type OptionProblem } from '../../../engine/operator.ts';
import { s3ConnectionProblems } from '../../shared/s3-options.ts';
import { type S3SinkOptions, schema } from './schema.ts';

const defaults = {
  prefix: '',
  force_path_style: false,
  max_attempts: 5,
  format: 'jsonl',
  compression: 'gzip',
  time_field: 'timestamp',
  partition: 'hour',
  roll_interval_seconds: 300,
  roll_max_mib: 128,
  part_size_mib: 8,
  upload_concurrency: 4,
} as const satisfies Omit<S3SinkOptions, 'bucket'>;

export default defineSink<typeof schema, S3SinkOptions>({
  type: 's3',
  stability: 'alpha',
  summary: 'Writes gzip JSON lines or CSV objects to S3, partitioned by hour in the key; exactly once across crashes',
  schema,
  accepts: ['any'],
  writes: (options) => [`s3://${options.bucket}/${options.prefix}`],
  examples: [
    { ...defaults, bucket: 'access-logs', prefix: 'parsed/' },
    {
      ...defaults,
      bucket: 'access-logs',
      prefix: 'requests/',
      endpoint: 'http://127.0.0.1:9000',
      force_path_style: true,
      format: 'csv',
      fields: ['timestamp', 'client_ip', 'method', 'path', 'status', 'bytes'],
      partition: 'day',
    },
  ],
  fields: (options) => [
    { path: ['time_field'], field: options.time_field },
    ...(options.format === 'csv' ? (options.fields ?? []).map((field, i) => ({ path: ['fields', i], field })) : []),
  ],
  validate(options): OptionProblem[] {
    const problems: OptionProblem[] = s3ConnectionProblems(options);
    if (options.fields && options.format !== 'csv') {
      problems.push({
        path: ['fields'],
        message: '`fields` applies to CSV only',
        hint: 'set `format: csv` or remove `fields`',
      });
    }
    if (options.prefix !== '' && !options.prefix.endsWith('/')) {
      problems.push({
        path: ['prefix'],
        severity: 'warning',
        message: 'a prefix that does not end in `/` is glued to the partition (`logsdt=…`)',
        hint: `write \`${options.prefix}/\``,
      });
    }
    return problems;
  },
  create: async (options, ctx) => (await import('./s3.ts')).createS3Sink(options, ctx),
});
