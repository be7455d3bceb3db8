import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { defineSink } from '../../../engine/operator.ts';
import { type FileSinkOptions, schema } from './schema.ts';

export default defineSink<typeof schema, FileSinkOptions>({
  type: 'file',
  stability: 'beta',
  summary: 'Writes JSON lines or CSV to a file, optionally gzip and rolled; exactly once across crashes',
  schema,
  accepts: ['any'],
  writes: (options, cwd) => [pathToFileURL(resolve(cwd, options.path)).href],
  examples: [
    { path: 'out/parsed.jsonl', format: 'jsonl', compression: 'none', append: false },
    {
      path: 'out/requests.csv.gz',
      format: 'csv',
      fields: ['timestamp', 'client_ip', 'method', 'path', 'status', 'bytes'],
      compression: 'gzip',
      append: false,
      rolling: { max_bytes: 104857600, interval_seconds: 3600 },
    },
  ],
  fields: (options) =>
    options.format === 'csv' ? (options.fields ?? []).map((field, i) => ({ path: ['fields', i], field })) : [],
  validate(options) {
    const problems = [];
    if (options.compression === 'gzip' && !options.path.endsWith('.gz')) {
      problems.push({
        path: ['path'],
        message: 'gzip output to a file whose name does not end in .gz',
        hint: `name it ${options.path}.gz so tools recognise it`,
        severity: 'warning' as const,
      });
    }
    if (options.fields && options.format !== 'csv') {
      problems.push({
        path: ['fields'],
        message: '`fields` applies to CSV only',
        hint: 'set `format: csv` or remove `fields`',
      });
    }
    return problems;
  },
  create: async (options, ctx) => (await import('./file.ts')).createFileSink(options, ctx),
});
