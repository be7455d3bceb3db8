import { defineSource, type OptionProblem } from '../../../engine/operator.ts';
import { RAW_LINE_SCHEMA, type RecordSchema } from '../../../engine/record-schema.ts';
import { type HttpSourceOptions, schema } from './schema.ts';

/** Pushed lines are never cut (the body limit bounds them): `message`, and its bytes when they are not UTF-8. */
const lineSchema: RecordSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['message'],
  properties: {
    message: RAW_LINE_SCHEMA.properties.message,
    message_base64: RAW_LINE_SCHEMA.properties.message_base64,
  },
};

export default defineSource<typeof schema, HttpSourceOptions>({
  type: 'http',
  stability: 'alpha',
  summary: 'Takes log lines, NDJSON or JSON arrays POSTed over HTTP; answers once they are durable',
  schema,
  // Malformed NDJSON lines and values the records mode does not take leave on `dead_letter`.
  outputs: { default: 'raw', dead_letter: 'dead_letter' },
  outputsFor: (options) => ({ default: options.records === 'json' ? 'any' : 'raw', dead_letter: 'dead_letter' }),
  outputSchemas: (options): Readonly<Record<string, RecordSchema>> =>
    options.records === 'json' ? {} : { default: lineSchema },
  examples: [
    {
      listen: '127.0.0.1:8081',
      path: '/ingest',
      records: 'raw',
      max_body_bytes: 10485760,
      max_waiting_requests: 64,
      max_wait_ms: 5000,
      retry_after_seconds: 1,
    },
    {
      listen: '0.0.0.0:8081',
      path: '/v1/logs',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the example shows the interpolation syntax
      api_key: '${secret:INGEST_KEY}',
      records: 'json',
      max_body_bytes: 1048576,
      max_waiting_requests: 16,
      max_wait_ms: 500,
      retry_after_seconds: 5,
    },
    {
      listen: '127.0.0.1:8081',
      path: '/ingest',
      records: 'raw',
      max_body_bytes: 10485760,
      max_waiting_requests: 64,
      max_wait_ms: 5000,
      retry_after_seconds: 1,
      buffer: { path: '/var/lib/etl/ingest-wal', max_bytes: 1073741824, segment_bytes: 16777216, fsync: true },
    },
  ],
  validate(options): OptionProblem[] {
    const port = Number(options.listen.slice(options.listen.lastIndexOf(':') + 1));
    const problems: OptionProblem[] = [];
    if (port > 65535) problems.push({ path: ['listen'], message: `port ${port} is out of range (0 to 65535)` });
    const { buffer } = options;
    if (buffer && buffer.segment_bytes * 4 > buffer.max_bytes) {
      problems.push({
        path: ['buffer', 'segment_bytes'],
        message: `segment_bytes (${buffer.segment_bytes}) is more than a quarter of max_bytes (${buffer.max_bytes})`,
        hint: 'segments are deleted whole, so the buffer would sit full of committed records: use smaller segments',
      });
    }
    if (buffer && buffer.max_bytes < 2 * options.max_body_bytes) {
      problems.push({
        path: ['buffer', 'max_bytes'],
        severity: 'warning',
        message: `max_bytes (${buffer.max_bytes}) is less than twice max_body_bytes (${options.max_body_bytes})`,
        hint: 'a request is stored with its origins, larger than its body: the largest ones would be answered 413',
      });
    }
    return problems;
  },
  unbounded: () => true,
  create: async (options, ctx) => (await import('./http.ts')).createHttpSource(options, ctx),
});
