import type { FromSchema } from 'json-schema-to-ts';
import { s3ConnectionProperties } from '../../shared/s3-options.ts';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/sinks/s3.json',
  type: 'object',
  additionalProperties: false,
  required: ['bucket'],
  description:
    'Writes records to an S3 bucket (or an S3-compatible store) as JSON lines or CSV objects, gzip by default, ' +
    'partitioned by the hour (or day) of each record’s time in the key (`dt=2026-12-05/hour=13/`). Records are ' +
    'staged under the data directory, covered by every checkpoint, and uploaded once old or large enough under a ' +
    'key made of the pipeline, the stage, the run lineage and the id of the checkpoint that sealed it: a rerun ' +
    'after a crash uploads the same objects again under the same keys, so nothing is stored twice.',
  properties: {
    ...s3ConnectionProperties,
    prefix: {
      type: 'string',
      default: '',
      description: 'What every key starts with (`web/access/`); empty: the partitions start at the bucket’s root.',
      examples: ['web/access/'],
    },
    format: {
      type: 'string',
      enum: ['jsonl', 'csv'],
      default: 'jsonl',
      description: '`jsonl`: one JSON object per line. `csv`: RFC 4180 with a header row in every object.',
      examples: ['jsonl'],
    },
    fields: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      minItems: 1,
      description:
        'CSV columns, in order; dotted paths reach nested values. Default: the fields of the records’ schema when ' +
        'it is closed, else the keys of the first record written (kept in the checkpoint).',
      examples: [['timestamp', 'client_ip', 'method', 'path', 'status', 'bytes']],
    },
    compression: {
      type: 'string',
      enum: ['gzip', 'none'],
      default: 'gzip',
      description: '`gzip`: objects end in `.gz` and hold gzip members of about 1 MiB of text each.',
      examples: ['gzip'],
    },
    time_field: {
      type: 'string',
      minLength: 1,
      default: 'timestamp',
      description:
        'The field whose time (ISO-8601 text or epoch milliseconds) picks the partition, in UTC. A record without ' +
        'a readable time goes to `dead_letter`.',
      examples: ['timestamp'],
    },
    partition: {
      type: 'string',
      enum: ['hour', 'day'],
      default: 'hour',
      description: '`hour`: keys under `dt=YYYY-MM-DD/hour=HH/`; `day`: under `dt=YYYY-MM-DD/`.',
      examples: ['hour'],
    },
    roll_interval_seconds: {
      type: 'number',
      minimum: 0,
      default: 300,
      description:
        'How long a partition’s object gathers records over checkpoints before it is uploaded (checked at each ' +
        'checkpoint; the last checkpoint of a run uploads everything). 0: one object per partition per ' +
        'checkpoint. What gathers is staged on the local disk and covered by the checkpoints, so a crash loses ' +
        'none of it.',
      examples: [300],
    },
    roll_max_mib: {
      type: 'integer',
      minimum: 1,
      default: 128,
      description:
        'An object is uploaded at the first checkpoint that finds it this large (compressed), whatever its age.',
      examples: [128],
    },
    part_size_mib: {
      type: 'integer',
      minimum: 5,
      maximum: 5120,
      default: 8,
      description:
        'Objects larger than this are uploaded in parts of this size (multipart upload); smaller ones in one ' +
        'request. S3 takes at most 10,000 parts per object.',
      examples: [8],
    },
    upload_concurrency: {
      type: 'integer',
      minimum: 1,
      maximum: 64,
      default: 4,
      description: 'Parts of one object uploaded at once.',
      examples: [4],
    },
  },
} as const;

export type S3SinkOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
