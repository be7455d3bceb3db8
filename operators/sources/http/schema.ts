import type { FromSchema } from 'json-schema-to-ts';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/sources/http.json',
  type: 'object',
  additionalProperties: false,
  description:
    'Listens for HTTP POSTs of log lines (text/plain), NDJSON or a JSON array, gzip accepted, and answers each ' +
    'request only once its records are durable (committed by every sink downstream). When the pipeline cannot take ' +
    'more it answers 429 or 503 with `Retry-After` instead of buffering without bound. Without `buffer` a push ' +
    'source has no checkpoint position: a client that got no 2xx answer must send its request again. With `buffer`, ' +
    'a request is answered once its records are written and fsynced to a local write-ahead log, which the source ' +
    'then reads from (its checkpoint position is the log position).',
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
    buffer: {
      type: 'object',
      additionalProperties: false,
      description:
        'A local write-ahead log: a request is answered 200 as soon as its records (and dead letters) are appended ' +
        'and fsynced to it, without waiting for the sinks to commit; the source emits from the log, and segments ' +
        'every committed checkpoint covers are deleted. After a crash a rerun sends on what was answered but not ' +
        'committed. When the log holds `max_bytes`, requests are answered 503 with `Retry-After`. One process at a ' +
        'time may use a directory (a lock file in it).',
      properties: {
        path: {
          type: 'string',
          minLength: 1,
          description:
            'Directory of the log, relative to the directory `etl` was started in; created if missing. Default: ' +
            '`<data_dir>/http-buffer/<stage id>`. Put it on local storage that survives restarts.',
          examples: ['/var/lib/etl/ingest-wal', '.etl/http-buffer/pushed'],
        },
        max_bytes: {
          type: 'integer',
          minimum: 65536,
          maximum: 1099511627776,
          default: 268435456,
          description:
            'Bytes the log may hold on disk (records not yet committed, in segments not yet deleted). A request ' +
            'that would go past it is answered 503 with `Retry-After`; one larger than it on its own, 413.',
          examples: [268435456, 1073741824],
        },
        segment_bytes: {
          type: 'integer',
          minimum: 4096,
          maximum: 1073741824,
          default: 16777216,
          description:
            'A new segment file is started once the current one holds this many bytes; a segment is deleted once ' +
            'a committed checkpoint covers all of it, so the disk used runs ahead of what is uncommitted by up to ' +
            'about one segment. At most a quarter of `max_bytes`.',
          examples: [16777216, 1048576],
        },
        fsync: {
          type: 'boolean',
          default: true,
          description:
            '`true`: a request is answered only once its entry is fsynced (one fsync for all the requests that ' +
            'arrive meanwhile): it survives a crash of the machine. `false`: once written to the file, it survives ' +
            'a crash of the process but not of the machine.',
          examples: [true],
        },
      },
      examples: [{ path: '/var/lib/etl/ingest-wal', max_bytes: 1073741824 }],
    },
  },
} as const;

export type HttpSourceOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
