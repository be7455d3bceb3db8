import type { FromSchema } from 'json-schema-to-ts';
import { AUTO_CANDIDATES, BUILTIN_NAMES } from './formats/builtin.ts';

const jsonKey = (field: string) =>
  ({ type: 'string', minLength: 1, description: `JSON key (dotted for nested objects) of ${field}.` }) as const;

/** One concrete format (everything `format` accepts except `auto`). */
const formatVariants = [
  {
    type: 'string',
    enum: BUILTIN_NAMES,
    description:
      'A built-in format: Apache `common`, `combined`, `combinedio`, `combined_usec` (+%D), `combined_sec` (+%T), ' +
      '`vhost_common`, `vhost_combined`; nginx `nginx_combined`, `nginx_main`, `nginx_combined_request_time`, ' +
      '`nginx_timed_combined`, `nginx_main_request_time`, `nginx_main_upstream`, `nginx_upstream_time`; `json` ' +
      '(JSON lines, nginx variable names as keys); error logs `apache_error`, `nginx_error`, `error_log` (either).',
  },
  {
    type: 'object',
    additionalProperties: false,
    required: ['apache'],
    description: 'An Apache mod_log_config format string, as in `LogFormat "…"` (or the whole LogFormat line).',
    properties: {
      apache: { type: 'string', minLength: 1, description: 'The LogFormat string, e.g. `%h %l %u %t "%r" %>s %b`.' },
    },
  },
  {
    type: 'object',
    additionalProperties: false,
    required: ['nginx'],
    description: 'An nginx log_format string (or the whole `log_format name … ;` directive pasted from nginx.conf).',
    properties: {
      nginx: {
        type: 'string',
        minLength: 1,
        description: 'The log_format text, e.g. `$remote_addr - $remote_user …`.',
      },
      escape: {
        type: 'string',
        enum: ['default', 'json', 'none'],
        description: 'The `escape=` parameter of log_format; `default` unless the pasted directive says otherwise.',
      },
    },
  },
  {
    type: 'object',
    additionalProperties: false,
    required: ['json'],
    description: 'JSON lines with a field mapping.',
    properties: {
      json: {
        type: 'object',
        additionalProperties: false,
        description: 'How JSON keys map to record fields.',
        properties: {
          fields: {
            type: 'object',
            additionalProperties: false,
            description:
              'Record field → JSON key. Fields not listed are looked up under their usual names (nginx variable names first).',
            properties: {
              client_ip: jsonKey('client_ip'),
              ident: jsonKey('ident'),
              user: jsonKey('user'),
              timestamp: jsonKey('the time (CLF, ISO-8601 or epoch seconds/milliseconds)'),
              request: jsonKey('the request line'),
              method: jsonKey('method'),
              request_uri: jsonKey('path and query together'),
              path: jsonKey('path'),
              query: jsonKey('query'),
              protocol: jsonKey('protocol'),
              status: jsonKey('status'),
              bytes: jsonKey('bytes'),
              bytes_sent: jsonKey('bytes_sent'),
              bytes_received: jsonKey('bytes_received'),
              referrer: jsonKey('referrer'),
              user_agent: jsonKey('user_agent'),
              request_time_s: jsonKey('the request time in seconds'),
              request_time_ms: jsonKey('the request time in milliseconds'),
              request_time_us: jsonKey('the request time in microseconds'),
              upstream_addr: jsonKey('upstream_addr'),
              upstream_status: jsonKey('upstream_status'),
              upstream_response_time: jsonKey('upstream_response_time (seconds, nginx list syntax)'),
              vhost: jsonKey('vhost'),
              port: jsonKey('port'),
            },
          },
        },
      },
    },
  },
] as const;

export const schema = {
  $id: 'https://etl.dev/schemas/operators/transforms/parse.json',
  type: 'object',
  additionalProperties: false,
  description:
    'Parses raw access-log (or error-log) lines into normalized records. Lines that fit no format go to `dead_letter`.',
  properties: {
    format: {
      description:
        'The log format: `auto` (decided per file from a sample, with per-line fallback; error-log records then ' +
        'leave on the `error_log` port), a built-in name, ' +
        '`{ apache: "<LogFormat>" }`, `{ nginx: "<log_format>" }` or `{ json: { fields } }`.',
      default: 'auto',
      anyOf: [{ type: 'string', const: 'auto', description: 'Detect the format per file.' }, ...formatVariants],
      examples: ['auto', 'combined', { apache: '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D' }],
    },
    candidates: {
      type: 'array',
      minItems: 1,
      description:
        'With `format: auto`: the formats to choose from, in order of preference on a tie. Error-log formats among ' +
        'them send their records to the `error_log` port.',
      items: { anyOf: formatVariants, description: 'A candidate access-log or error-log format.' },
      default: AUTO_CANDIDATES,
      examples: [['combined', { nginx: '$remote_addr [$time_local] "$request" $status $request_time' }]],
    },
    sample_lines: {
      type: 'integer',
      minimum: 1,
      maximum: 100000,
      default: 200,
      description: 'With `format: auto`: lines of each file scored against every candidate before deciding.',
      examples: [200],
    },
    custom_variables: {
      type: 'array',
      description:
        'nginx variables defined by `map`, `set` or third-party modules that the format uses; they go to `extra`.',
      items: { type: 'string', pattern: '^[A-Za-z0-9_]+$', description: 'Variable name without `$`.' },
      default: [],
      examples: [['geoip2_country', 'loggable']],
    },
    trusted_proxies: {
      type: 'array',
      description:
        'Addresses or CIDR blocks (IPv4 and IPv6) of your own proxies and load balancers. When a line carries a ' +
        'forwarding chain, client_ip is its rightmost address not in this list (the leftmost when all are); with ' +
        'this list set, X-Forwarded-For fields (`$http_x_forwarded_for`, `%{X-Forwarded-For}i`) are resolved too.',
      items: { type: 'string', minLength: 1, description: 'An address or CIDR block: `10.0.0.0/8`, `2001:db8::/32`.' },
      default: [],
      examples: [['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fd00::/8']],
    },
    timezone: {
      type: 'string',
      minLength: 1,
      default: 'UTC',
      description: 'IANA time zone of times logged without an offset (error logs, `%{…}t` without %z).',
      examples: ['UTC', 'Europe/Paris'],
    },
    max_line_bytes: {
      type: 'integer',
      minimum: 64,
      default: 65536,
      description:
        'Longer lines go to dead_letter unparsed, so one runaway line cannot cost unbounded time or memory. Bytes ' +
        'as read: a line that is not UTF-8 is measured by its bytes, not by its decoding.',
      examples: [65536],
    },
  },
} as const;

export type ParseOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
