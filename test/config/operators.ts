/**
 * Small operator definitions for the loader tests, shaped like the real ones (closed schemas with
 * descriptions, defaults and examples) so these tests do not depend on other operators' progress.
 */
import { defineSink, defineSource, defineTransform, type OperatorDefinition } from '../../engine/operator.ts';

const never = (): never => {
  throw new Error('test definition: not meant to run');
};

export const fileSource = defineSource({
  type: 'file',
  stability: 'stable',
  summary: 'reads lines from files',
  schema: {
    $id: 'https://etl.dev/schemas/operators/sources/file.json',
    type: 'object',
    additionalProperties: false,
    required: ['paths'],
    properties: {
      paths: { type: 'array', description: 'globs', minItems: 1, items: { type: 'string' } },
      follow: { type: 'boolean', description: 'keep reading', default: false },
      max_line_bytes: { type: 'integer', description: 'longest line', minimum: 1, default: 65536 },
    },
  } as const,
  examples: [{ paths: ['logs/*.log'] }],
  outputs: { default: 'raw' },
  create: never,
});

export const generatorSource = defineSource({
  type: 'generator',
  stability: 'stable',
  summary: 'generates lines',
  schema: {
    $id: 'https://etl.dev/schemas/operators/sources/generator.json',
    type: 'object',
    additionalProperties: false,
    properties: { count: { type: 'integer', description: 'lines', minimum: 0, default: 10 } },
  } as const,
  examples: [{ count: 3 }],
  outputs: { default: 'raw' },
  create: never,
});

export const stdinSource = defineSource({
  type: 'stdin',
  stability: 'stable',
  summary: 'reads standard input',
  schema: {
    $id: 'https://etl.dev/schemas/operators/sources/stdin.json',
    type: 'object',
    additionalProperties: false,
    properties: {},
  } as const,
  examples: [{}],
  outputs: { default: 'raw' },
  create: never,
});

export const parseTransform = defineTransform({
  type: 'parse',
  stability: 'stable',
  summary: 'parses access log lines',
  schema: {
    $id: 'https://etl.dev/schemas/operators/transforms/parse.json',
    type: 'object',
    additionalProperties: false,
    properties: {
      format: {
        type: 'string',
        description: 'log format',
        enum: ['auto', 'combined', 'common', 'error'],
        default: 'auto',
      },
    },
  } as const,
  examples: [{ format: 'combined' }],
  accepts: ['raw'],
  outputs: { default: 'access' },
  outputsFor: (options: { format?: string }) => ({ default: options.format === 'error' ? 'error_log' : 'access' }),
  create: never,
});

export const geoTransform = defineTransform({
  type: 'geo',
  stability: 'beta',
  summary: 'adds the country of the client address',
  schema: {
    $id: 'https://etl.dev/schemas/operators/transforms/geo.json',
    type: 'object',
    additionalProperties: false,
    properties: {
      database: { type: 'string', description: 'mmdb file', default: 'GeoLite2-City.mmdb' },
      min_prefix: { type: 'integer', description: 'shortest prefix', default: 8 },
      max_prefix: { type: 'integer', description: 'longest prefix', default: 32 },
    },
  } as const,
  examples: [{ database: 'geo.mmdb', min_prefix: 8, max_prefix: 32 }],
  accepts: ['access'],
  outputs: { default: 'access' },
  validate(options: { database?: string; min_prefix: number; max_prefix: number }) {
    return options.min_prefix > options.max_prefix
      ? [{ path: ['min_prefix'], message: '`min_prefix` must not exceed `max_prefix`' }]
      : [];
  },
  create: never,
});

export const fileSink = defineSink({
  type: 'file',
  stability: 'stable',
  summary: 'writes records to a file',
  schema: {
    $id: 'https://etl.dev/schemas/operators/sinks/file.json',
    type: 'object',
    additionalProperties: false,
    required: ['path'],
    properties: {
      path: { type: 'string', description: 'output file', minLength: 1 },
      format: { type: 'string', description: 'encoding', enum: ['jsonl', 'csv'], default: 'jsonl' },
      url: { type: 'string', description: 'a URL', format: 'uri' },
      flush_interval_seconds: { type: 'number', description: 'flush period', exclusiveMinimum: 0, default: 1 },
      compression: {
        description: 'gzip on/off, or its settings',
        oneOf: [
          { type: 'boolean' },
          {
            type: 'object',
            additionalProperties: false,
            properties: { level: { type: 'integer', description: 'gzip level', minimum: 1, maximum: 9 } },
          },
        ],
      },
    },
  } as const,
  examples: [{ path: 'out.jsonl' }],
  accepts: ['any'],
  create: never,
});

export const accessSink = defineSink({
  type: 'table',
  stability: 'beta',
  summary: 'writes access records to a table',
  schema: {
    $id: 'https://etl.dev/schemas/operators/sinks/table.json',
    type: 'object',
    additionalProperties: false,
    properties: { table: { type: 'string', description: 'table name', default: 'access' } },
  } as const,
  examples: [{}],
  accepts: ['access'],
  create: never,
});

export const testRegistry: readonly OperatorDefinition[] = [
  fileSource,
  generatorSource,
  stdinSource,
  parseTransform,
  geoTransform,
  fileSink,
  accessSink,
] as readonly OperatorDefinition[];
