import type { FromSchema } from 'json-schema-to-ts';

// Here rather than beside the line maker: `etl validate` loads schemas, and the line maker's tables are large.
export const LOG_FORMATS = [
  'apache_common',
  'apache_combined',
  'nginx_combined',
  'nginx_combined_request_time',
  'nginx_json',
] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export const DEFAULT_START_TIME = '2026-01-01T00:00:00Z';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/sources/generator.json',
  type: 'object',
  additionalProperties: false,
  description:
    'Generates synthetic web access log lines (`{ message }`), deterministic for a seed: realistic clients (IPv4 ' +
    'and some IPv6), paths, query strings, agents (browsers, bots, curl), referrers, statuses, sizes and request ' +
    'times, plus a small share of broken lines. For examples, tests and benchmarks. Its checkpoint position is the ' +
    'number of lines emitted, so a rerun with the same options continues the same sequence.',
  properties: {
    format: {
      type: 'string',
      enum: LOG_FORMATS,
      default: 'nginx_combined',
      description:
        'Line format: `apache_common` (CLF, `-` for an empty body), `apache_combined` (CLF plus referrer and agent), ' +
        '`nginx_combined` (nginx default `combined`, `0` for an empty body), `nginx_combined_request_time` ' +
        '(`combined` plus `$request_time` in seconds), `nginx_json` (one JSON object per line).',
      examples: ['nginx_combined', 'apache_common', 'nginx_json'],
    },
    count: {
      type: 'integer',
      minimum: 0,
      description: 'Lines to generate in all (across reruns); omit for an endless stream.',
      examples: [1000000, 5000],
    },
    rate_per_second: {
      type: 'number',
      exclusiveMinimum: 0,
      description:
        'Lines per second to emit at; omit for as fast as the pipeline takes them. Also spaces the timestamps ' +
        '(without it they advance as for 100 requests per second).',
      examples: [100, 20000],
    },
    seed: {
      type: 'integer',
      default: 1,
      description: 'Seed of the random stream: the same seed and options give the same lines.',
      examples: [1, 42],
    },
    malformed_ratio: {
      type: 'number',
      minimum: 0,
      maximum: 1,
      default: 0.01,
      description:
        'Share of broken lines: empty lines, binary junk, TLS handshakes sent to the HTTP port (logged escaped, ' +
        'status 400), lines cut short.',
      examples: [0.01, 0],
    },
    start_time: {
      type: 'string',
      default: DEFAULT_START_TIME,
      description:
        'Timestamp of the first line, ISO-8601, or `now` (the time the run starts, so the lines look live; ' +
        'output then differs between runs). Timestamps advance with the request rate, with jitter.',
      examples: ['2026-01-01T00:00:00Z', 'now'],
    },
    with_sequence: {
      type: 'boolean',
      default: false,
      description:
        'Append `seq=<n>` (the 0-based line number) to the query string of every well-formed line, so a test can ' +
        'check that each line arrives exactly once.',
      examples: [false, true],
    },
  },
} as const;

export type GeneratorSourceOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
