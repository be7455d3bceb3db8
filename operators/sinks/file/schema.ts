import type { FromSchema } from 'json-schema-to-ts';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/sinks/file.json',
  type: 'object',
  additionalProperties: false,
  description:
    'Writes records to a file as JSON lines or CSV, optionally gzip-compressed and rolled by size or time. ' +
    'Exactly once across crashes: a rerun truncates what was written after the last checkpoint.',
  required: ['path'],
  properties: {
    path: {
      type: 'string',
      minLength: 1,
      description:
        'File to write; parent directories are created. Relative paths resolve against the working directory. ' +
        'Two sinks must not share a file.',
      examples: ['out/parsed.jsonl', 'out/requests.csv.gz'],
    },
    format: {
      type: 'string',
      enum: ['jsonl', 'csv'],
      default: 'jsonl',
      description: '`jsonl`: one JSON object per line. `csv`: RFC 4180 with a header row; nested values as JSON.',
      examples: ['jsonl'],
    },
    fields: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      minItems: 1,
      description:
        'CSV columns, in order; dotted paths reach nested values (`upstream.addr`). Default: the keys of the first ' +
        'record written, kept in the checkpoint so a rerun writes the same columns.',
      examples: [['timestamp', 'client_ip', 'method', 'path', 'status', 'bytes']],
    },
    compression: {
      type: 'string',
      enum: ['none', 'gzip'],
      default: 'none',
      description:
        '`gzip`: each write to disk (about 1 MiB of text, and at every checkpoint) is one gzip member; concatenated ' +
        'members are one valid gzip file that zcat and gunzip read whole.',
      examples: ['gzip'],
    },
    append: {
      type: 'boolean',
      default: false,
      description:
        'On a run without a checkpoint: keep what the file and the files rolled from it hold, and append. Default: ' +
        'truncate the file and remove the files rolled from it, since the sources start from the beginning. ' +
        'Runs that resume from a checkpoint always continue exactly where the checkpoint left the file.',
      examples: [true],
    },
    rolling: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      description:
        'Start a new file when the current one is large or old enough. The finished file is renamed ' +
        '`<name>-<UTC yyyyMMddTHHmmss>-<sequence>.<ext>` beside `path` (names sort by time), and writing goes on in `path`.',
      properties: {
        max_bytes: {
          type: 'integer',
          minimum: 1,
          description: 'Roll once the file holds at least this many bytes (compressed size when gzip).',
          examples: [104857600],
        },
        interval_seconds: {
          type: 'integer',
          minimum: 1,
          description: 'Roll once the file was started this long ago (checked when a batch arrives).',
          examples: [3600],
        },
      },
      examples: [{ max_bytes: 104857600 }],
    },
  },
  examples: [{ path: 'out/parsed.jsonl', format: 'jsonl' }],
} as const;

export type FileSinkOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
