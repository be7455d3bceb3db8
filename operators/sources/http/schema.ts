import type { FromSchema } from 'json-schema-to-ts';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/sources/http.json',
  type: 'object',
  additionalProperties: false,
  description:
    'Listens for HTTP POSTs of log lines (text/plain), NDJSON or a JSON array, gzip accepted, and answers each ' +
    'request only once its records are durable (committed by every sink downstream). When the pipeline cannot take ' +
    'more it answers 429 or 503 with `Retry-After` instead of buffering without bound. A push source has no ' +
    'checkpoint position: a client that got no 2xx answer must send its request again.',
  properties: {
    listen: {
      type: 'string',
      pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$',
      default: '127.0.0.1:8081',
      description:
        'Address and port to listen on, `host:port` (`[::1]:8081` for IPv6). Bind to loopback unless a proxy or ' +
        'network policy protects the port; set `api_key` when it is reachable from elsewhere. Port 0 picks a free port.',
      examples: ['127.0.0.1:8081', '0.0.0.0:8081'],
    },
    path: {
      type: 'string',
      pattern: '^/[A-Za-z0-9._~/-]*$',
      default: '/ingest',
      description: 'URL path that takes the POSTs.',
      examples: ['/ingest', '/v1/logs'],
    },
    api_key: {
      type: 'string',
      minLength: 16,
      writeOnly: true,
      description:
        'When set, a request must carry it as `Authorization: Bearer <key>` or `X-API-Key: <key>` (compared in ' +
        // biome-ignore lint/suspicious/noTemplateCurlyInString: the description shows the interpolation syntax
        'constant time), else it is answered 401. Read it from a secret: `${secret:INGEST_KEY}`.',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the example shows the interpolation syntax
      examples: ['${secret:INGEST_KEY}'],
    },
    records: {
      type: 'string',
      enum: ['raw', 'json'],
      default: 'raw',
      description:
        '`raw`: every record is a line `{ message }` (kind `raw`, for `parse`): a text/plain line, or a JSON string ' +
        'in NDJSON or a JSON array; a JSON object is a dead letter. `json`: a JSON object becomes a record with its ' +
        'fields as they are, a JSON string or a text/plain line becomes `{ message }` (kind `any`).',
      examples: ['raw', 'json'],
    },
    max_body_bytes: {
      type: 'integer',
      minimum: 1024,
      maximum: 1073741824,
      default: 10485760,
      description:
        'Largest request body, in bytes, both as sent and once gunzipped (a gzip bomb is cut off there): a ' +
        'larger one is answered 413.',
      examples: [10485760, 1048576],
    },
    max_waiting_requests: {
      type: 'integer',
      minimum: 1,
      maximum: 100000,
      default: 64,
      description:
        'Requests being read or waiting for the pipeline to take them (not yet sent downstream). Past this, a ' +
        'request is answered 429 with `Retry-After` before its body is read: memory stays bounded by about this ' +
        'many bodies, however many clients connect.',
      examples: [64, 16],
    },
    max_wait_ms: {
      type: 'integer',
      minimum: 1,
      maximum: 600000,
      default: 5000,
      description:
        'How long a waiting request may wait for the pipeline to take it (credit) before it is answered 503 with ' +
        '`Retry-After`, in milliseconds.',
      examples: [5000, 500],
    },
    retry_after_seconds: {
      type: 'integer',
      minimum: 1,
      maximum: 3600,
      default: 1,
      description: 'The `Retry-After` sent with 429 and 503 answers, in seconds.',
      examples: [1, 5],
    },
  },
} as const;

export type HttpSourceOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
