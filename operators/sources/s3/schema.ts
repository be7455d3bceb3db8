import type { FromSchema } from 'json-schema-to-ts';
import { s3ConnectionProperties } from '../../shared/s3-options.ts';
import { maxLineBytesProperty } from '../../shared/line-reader/schema.ts';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/sources/s3.json',
  type: 'object',
  additionalProperties: false,
  required: ['bucket'],
  description:
    'Reads the objects of an S3 bucket (or an S3-compatible store) under a prefix, in key order, as lines (plain or ' +
    'gzip); each line becomes `{ message }` with `s3://bucket/key`, its byte offset and line number in the origin. ' +
    'The checkpoint remembers which keys were read and where reading stopped in the current one, so a rerun goes ' +
    'on from there; with `follow`, new objects are picked up every `poll_interval_seconds`.',
  properties: {
    ...s3ConnectionProperties,
    prefix: {
      type: 'string',
      default: '',
      description: 'Only keys that start with this (`logs/2026/`); empty: the whole bucket.',
      examples: ['AWSLogs/123456789012/elasticloadbalancing/'],
    },
    follow: {
      type: 'boolean',
      default: false,
      description:
        'false: read the objects there are when the run starts, then end. true: list again every ' +
        '`poll_interval_seconds` and read the new objects, until the run is stopped.',
      examples: [true],
    },
    poll_interval_seconds: {
      type: 'number',
      exclusiveMinimum: 0,
      default: 30,
      description: 'With `follow`: how long to wait, once every object listed was read, before listing again.',
      examples: [30],
    },
    late_arrival_seconds: {
      type: 'number',
      minimum: 0,
      default: 900,
      description:
        'How much later than an object whose key sorts after it an object may still appear and be read. The ' +
        'checkpoint keeps a watermark (every key up to it is done) and the keys read past it; the watermark ' +
        'passes a read key once it was last modified this long ago, and an object that appears later with a key ' +
        'below the watermark is not read. Larger: more keys held in the checkpoint.',
      examples: [900],
    },
    compression: {
      type: 'string',
      enum: ['auto', 'gzip', 'none'],
      default: 'auto',
      description:
        '`auto`: gzip when the key ends in `.gz`, the object’s Content-Encoding is gzip, or its first bytes are ' +
        'gzip’s magic number; else plain text. `gzip` / `none`: every object is so.',
      examples: ['auto'],
    },
    max_line_bytes: maxLineBytesProperty,
  },
} as const;

export type S3SourceOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
