/**
 * The normalized records of web server logs: access records and error-log records, as `parse` emits them.
 * Shared by the operators that make them (parse declares them as its output schemas) and those that name
 * them (the postgres sink's `record_schema:` override). `accessRecordSchema` is published as
 * schemas/record.schema.json.
 * Every field is always present (null when the format does not carry it or the log wrote `-`), so each
 * record has the same shape for JSON, CSV and PostgreSQL sinks alike.
 *
 * Timestamps: `timestamp` is an ISO-8601 UTC string with millisecond precision
 * (`2000-10-10T20:55:36.000Z`): PostgreSQL casts it to timestamptz losslessly, JSON keeps it readable and
 * sortable as text, and rendering it is cached per second. The offset the server wrote (`-0700`) is kept
 * in `timestamp_offset_minutes` (-420), so the local time of the server can be rebuilt.
 */
import type { FromSchema } from 'json-schema-to-ts';

const text = (description: string) => ({ type: ['string', 'null'], description }) as const;
const RAW_BASE64 =
  'The original bytes of the log line, base64, when they are not valid UTF-8 (the text fields hold them decoded, ' +
  'each invalid byte as U+FFFD); null for a valid line. Decode it to get the line exactly as the server wrote it.';
const integer = (description: string) => ({ type: ['integer', 'null'], minimum: 0, description }) as const;

export const accessRecordSchema = {
  $id: 'https://etl.dev/schemas/record.schema.json',
  title: 'Access record',
  description:
    'One request of a web access log, normalized by the `parse` transform from Apache, nginx or JSON access logs. ' +
    'Fields the log format does not carry, and values logged as `-`, are null.',
  type: 'object',
  additionalProperties: false,
  required: [
    'client_ip',
    'ident',
    'user',
    'timestamp',
    'timestamp_offset_minutes',
    'request',
    'method',
    'path',
    'query',
    'protocol',
    'status',
    'bytes',
    'bytes_sent',
    'bytes_received',
    'referrer',
    'user_agent',
    'request_time_ms',
    'upstream_addr',
    'upstream_status',
    'upstream_response_time',
    'upstream_response_time_ms',
    'vhost',
    'port',
    'forwarded_for',
    'extra',
    'raw_base64',
  ],
  properties: {
    client_ip: text(
      'Client address (%h, %a, $remote_addr); IPv6 without brackets. A host name when the server resolved it. ' +
        'Behind proxies, the rightmost address of `forwarded_for` not in `trusted_proxies`.',
    ),
    ident: text('RFC 1413 identity (%l); almost always null.'),
    user: text('Authenticated user (%u, $remote_user).'),
    timestamp: {
      type: ['string', 'null'],
      format: 'date-time',
      description:
        'When the request was logged, as an ISO-8601 UTC instant with milliseconds: `2000-10-10T20:55:36.000Z`.',
    },
    timestamp_offset_minutes: {
      type: ['integer', 'null'],
      minimum: -1440,
      maximum: 1440,
      description:
        'UTC offset the server wrote with the time, in minutes east of UTC (`-0700` → -420); null when the log carries no offset.',
    },
    request: text('The request line as sent, unescaped (`GET /a?b=1 HTTP/1.1`); kept even when it is not HTTP.'),
    method: text('HTTP method; null when the request line is not HTTP (TLS handshake, junk, `-`).'),
    path: text('Request path without the query string, as sent (not percent-decoded).'),
    query: text('Query string without the leading `?`; null when the request had none.'),
    protocol: text('Protocol of the request line (`HTTP/1.1`); null for HTTP/0.9 and non-HTTP requests.'),
    status: integer('Final HTTP status (%>s, $status).'),
    bytes: integer('Response body bytes (%b, %B, $body_bytes_sent).'),
    bytes_sent: integer('Bytes sent including headers (%O, $bytes_sent).'),
    bytes_received: integer('Bytes received including request line and headers (%I, $request_length).'),
    referrer: text('Referer header, unescaped.'),
    user_agent: text('User-Agent header, unescaped.'),
    request_time_ms: {
      type: ['number', 'null'],
      minimum: 0,
      description: 'Time taken to serve the request in milliseconds (%D, %T, $request_time); fractional for %D.',
    },
    upstream_addr: text('Upstream address(es) as nginx logs them (`10.0.0.1:80, 10.0.0.2:80`).'),
    upstream_status: text('Upstream status(es) as nginx logs them (`502, 200`).'),
    upstream_response_time: text('Upstream response time(s) in seconds as nginx logs them (`0.001, 0.002 : 0.003`).'),
    upstream_response_time_ms: {
      type: ['number', 'null'],
      minimum: 0,
      description: 'Sum of the upstream response times in milliseconds; null when no upstream was contacted.',
    },
    vhost: text('Virtual host / server name (%v, %V, $host, $server_name).'),
    port: {
      type: ['integer', 'null'],
      minimum: 0,
      maximum: 65535,
      description: 'Server port of the request (%p, $server_port).',
    },
    forwarded_for: {
      type: ['array', 'null'],
      items: { type: 'string', description: 'An address (or `unknown`, a host name) as the proxy wrote it.' },
      description:
        'The forwarding chain client_ip was chosen from, client first and nearest proxy last: a list logged in the ' +
        'client-address position (`$proxy_add_x_forwarded_for`, `"$http_x_forwarded_for" $remote_addr`), or, with ' +
        '`trusted_proxies` set, X-Forwarded-For followed by the connecting address. Null when the line carries no chain.',
    },
    extra: {
      type: 'object',
      description:
        'Everything else the format carries, by nginx-style name: `http_x_forwarded_for`, `sent_http_content_type`, ' +
        '`cookie_<name>`, `env_<name>`, `note_<name>`, `upstream_cache_status`, `remote_port`, `pipe`, `request_id`, … ' +
        'Text values are strings (null for `-`); counters (`connection`, `remote_port`, `pid`, …) are numbers. ' +
        'Fields appended after a format that `format: auto` could not name are `trailing_<n>`. ' +
        'For JSON logs: the keys no field was mapped from, with their JSON values (`""` and `"-"` as null).',
      additionalProperties: true,
    },
    raw_base64: text(RAW_BASE64),
  },
  examples: [
    {
      client_ip: '127.0.0.1',
      ident: null,
      user: 'frank',
      timestamp: '2000-10-10T20:55:36.000Z',
      timestamp_offset_minutes: -420,
      request: 'GET /apache_pb.gif HTTP/1.0',
      method: 'GET',
      path: '/apache_pb.gif',
      query: null,
      protocol: 'HTTP/1.0',
      status: 200,
      bytes: 2326,
      bytes_sent: null,
      bytes_received: null,
      referrer: 'http://www.example.com/start.html',
      user_agent: 'Mozilla/4.08 [en] (Win98; I ;Nav)',
      request_time_ms: null,
      upstream_addr: null,
      upstream_status: null,
      upstream_response_time: null,
      upstream_response_time_ms: null,
      vhost: null,
      port: null,
      forwarded_for: null,
      extra: {},
      raw_base64: null,
    },
  ],
} as const;

export type AccessRecord = FromSchema<typeof accessRecordSchema>;

/** A fresh record with every field null: one object shape for all records keeps the engine's code monomorphic. */
export function emptyAccessRecord(): AccessRecord {
  return {
    client_ip: null,
    ident: null,
    user: null,
    timestamp: null,
    timestamp_offset_minutes: null,
    request: null,
    method: null,
    path: null,
    query: null,
    protocol: null,
    status: null,
    bytes: null,
    bytes_sent: null,
    bytes_received: null,
    referrer: null,
    user_agent: null,
    request_time_ms: null,
    upstream_addr: null,
    upstream_status: null,
    upstream_response_time: null,
    upstream_response_time_ms: null,
    vhost: null,
    port: null,
    forwarded_for: null,
    extra: {},
    raw_base64: null,
  };
}

export const errorLogRecordSchema = {
  $id: 'https://etl.dev/schemas/error-log-record.schema.json',
  title: 'Error log record',
  description: 'One entry of an Apache or nginx error log, normalized by the `parse` transform.',
  type: 'object',
  additionalProperties: false,
  required: [
    'server',
    'timestamp',
    'timestamp_offset_minutes',
    'level',
    'module',
    'pid',
    'tid',
    'connection_id',
    'client_ip',
    'client_port',
    'code',
    'message',
    'request',
    'upstream',
    'host',
    'referrer',
    'raw_base64',
  ],
  properties: {
    server: { type: 'string', enum: ['apache', 'nginx'], description: 'Which server wrote the entry.' },
    timestamp: {
      type: ['string', 'null'],
      format: 'date-time',
      description:
        'ISO-8601 UTC instant with milliseconds. Error logs carry local time without an offset: it is read in the `timezone` option.',
    },
    timestamp_offset_minutes: {
      type: ['integer', 'null'],
      description: 'Offset of `timezone` at that time, in minutes east of UTC; null for UTC.',
    },
    level: text('Severity (`error`, `warn`, `notice`, `crit`, `trace1`, …).'),
    module: text('Apache module that logged the entry (`core`, `ssl`, …); null for nginx and Apache 2.2.'),
    pid: integer('Process id.'),
    tid: integer('Thread id (Apache `tid`, nginx `pid#tid`).'),
    connection_id: integer('nginx connection number (`*42`).'),
    client_ip: text('Client address the entry is about.'),
    client_port: integer('Client port (Apache 2.4).'),
    code: text('Apache error code (`AH00128`).'),
    message: { type: 'string', description: 'The message, without the prefix and the context fields parsed out.' },
    request: text('Request line from the nginx context (`request: "GET / HTTP/1.1"`).'),
    upstream: text('Upstream URL from the nginx context.'),
    host: text('Host (nginx `host:`) or virtual server (nginx `server:`) the entry is about.'),
    referrer: text('Referrer from the Apache (`, referer: …`) or nginx (`referrer: "…"`) context.'),
    raw_base64: text(RAW_BASE64),
  },
} as const;

export type ErrorLogRecord = FromSchema<typeof errorLogRecordSchema>;
