import type { FromSchema } from 'json-schema-to-ts';
import { maxLineBytesProperty } from '../../shared/line-reader/schema.ts';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/sources/file.json',
  type: 'object',
  additionalProperties: false,
  required: ['paths'],
  description:
    'Reads lines from files matched by globs, plain or gzip-compressed, oldest modified first; either once to the end or ' +
    'following them as they grow and rotate. Each line becomes `{ message }`. The checkpoint position records, per ' +
    'file, its identity (device, inode, fingerprint of its first bytes) and how far it was read, so a rerun resumes ' +
    'exactly after the last acknowledged line, even after a rename.',
  properties: {
    paths: {
      type: 'array',
      minItems: 1,
      items: { type: 'string', minLength: 1 },
      description:
        'Glob patterns of the files to read (`*`, `**`, `?`, `[a-z]`, `{a,b}`); relative ones resolve against the ' +
        'working directory. Files are read oldest modified first (equal times in path order); a file matched twice is read once.',
      examples: [['/var/log/nginx/access.log*'], ['logs/**/*.log', 'archive/*.gz']],
    },
    exclude: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      default: [],
      description:
        'Glob patterns of files to leave out. A pattern without `/` matches the file name in any directory ' +
        '(`*.bak`); one with `/` matches the whole path (relative ones against the working directory).',
      examples: [['*.bak', '*.tmp'], ['/var/log/nginx/error.log*']],
    },
    follow: {
      type: 'boolean',
      default: false,
      description:
        'false: read every file to its end, then finish. true: keep reading as lines are appended, pick up new ' +
        'matching files, and follow rotation by rename (the old file is finished through its open descriptor) and ' +
        'by copytruncate (reading restarts at 0 when the file shrinks).',
      examples: [false, true],
    },
    start_at: {
      type: 'string',
      enum: ['beginning', 'end'],
      default: 'beginning',
      description:
        'Where to start in files found at the very first start (no checkpoint yet): `beginning`, or `end` to ' +
        'take only lines written from now on (with `follow: true`). Files appearing later, and every file once a ' +
        'checkpoint exists, are read from where the checkpoint says or from the beginning.',
      examples: ['beginning', 'end'],
    },
    poll_interval_ms: {
      type: 'integer',
      minimum: 10,
      maximum: 60000,
      default: 250,
      description:
        'In follow mode, the pace of the checks that do not wait for file system notifications: files in a ' +
        'directory that cannot be watched are checked this often; elsewhere notifications say what changed, and ' +
        'a slow sweep (at most 256 files per interval) and a full rescan of the globs, each paced to about 1% of ' +
        'the time, catch what they miss.',
      examples: [250, 1000],
    },
    max_line_bytes: maxLineBytesProperty,
    partial_line_timeout_ms: {
      type: 'integer',
      minimum: 0,
      default: 5000,
      description:
        'In follow mode, how long a last line without newline may wait for its newline before it is emitted as ' +
        'it is (a writer that died mid-line). Without follow, such a line is emitted at end of file.',
      examples: [5000, 60000],
    },
    rotate_wait_ms: {
      type: 'integer',
      minimum: 0,
      default: 5000,
      description:
        'In follow mode, how long a file renamed away from every matching path (or deleted) is still read ' +
        'through its open descriptor after its last growth, for writers that have not reopened their log yet.',
      examples: [5000, 30000],
    },
    max_open_files: {
      type: 'integer',
      minimum: 8,
      maximum: 65536,
      default: 256,
      description:
        'In follow mode, most descriptors the source holds: files read recently keep theirs, idle ones are closed ' +
        'and reopened by path (their identity checked) when they change. Files renamed away and still being ' +
        'finished count too and are never closed early. Raise it when more files than this are written to at once.',
      examples: [256, 1024],
    },
    fingerprint_bytes: {
      type: 'integer',
      minimum: 16,
      maximum: 65536,
      default: 256,
      description:
        'How many leading bytes (decompressed for gzip) identify a file. Raise it when files share a long ' +
        'identical header; files whose first bytes are identical are taken as copies of one another.',
      examples: [256, 1024],
    },
  },
} as const;

export type FileSourceOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
