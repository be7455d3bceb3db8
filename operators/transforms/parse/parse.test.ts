import { recordingContext } from '../../../test/support/context.ts';
import { describe, expect, it } from 'vitest';
import { createAjv } from '../../../engine/schema/ajv.ts';
import { type DeadLetter, type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import { RAW_LINE_SCHEMA } from '../../../engine/record-schema.ts';
import { BUILTIN_NAMES, BUILTIN_TEMPLATES, ERROR_FORMATS } from './formats/builtin.ts';
import { JSON_TARGETS } from './formats/json.ts';
import definition from './index.ts';
import { accessRecordSchema, errorLogRecordSchema } from '../../shared/log-records.ts';
import { schema } from './schema.ts';
import { createParse, fixture, options, rawRecords, testContext } from './test-support.ts';

/** What the loader tells `validate` of a parse stage reading a file source. */
const RAW_INPUT = { inputSchema: RAW_LINE_SCHEMA };

function run(text: string, overrides = {}, file = 'access.log') {
  const ctx = testContext();
  const transform = createParse(overrides, ctx);
  const ports = transform.process(rawRecords(text, file));
  return { ctx, out: ports.default ?? [], dead: (ports.dead_letter ?? []) as DeadLetter[] };
}

describe('parse: schema and definition', () => {
  // The loader's own configuration: strict, defaults inserted.
  const ajv = createAjv();

  it('compiles strictly, fills defaults and accepts every example', () => {
    const validate = ajv.compile(schema);
    const empty: Record<string, unknown> = {};
    expect(validate(empty)).toBe(true);
    expect(empty).toEqual(options());
    for (const example of definition.examples)
      expect(validate(structuredClone(example)), JSON.stringify(example)).toBe(true);
    expect(validate({ format: 'apache' })).toBe(false);
    expect(validate({ format: { nginx: '$status', escape: 'xml' } })).toBe(false);
    expect(validate({ type: 'parse' })).toBe(false);
  });

  it('emits records that match the published record schema', () => {
    const validate = ajv.compile(accessRecordSchema);
    const { out } = run(fixture('oddities.log'));
    expect(out.length).toBeGreaterThan(10);
    for (const rec of out) expect(validate(rec), JSON.stringify(validate.errors)).toBe(true);
    const { out: errors } = run(fixture('nginx-error.log'), { format: 'error_log' });
    const validateError = ajv.compile(errorLogRecordSchema);
    for (const rec of errors) expect(validateError(rec), JSON.stringify(validateError.errors)).toBe(true);
  });

  it('lists every built-in format and every JSON mapping target in the schema', () => {
    expect(new Set(BUILTIN_NAMES)).toEqual(new Set([...Object.keys(BUILTIN_TEMPLATES), 'json', ...ERROR_FORMATS]));
    const jsonVariant = schema.properties.format.anyOf.find((v) => v.type === 'object' && 'json' in v.properties);
    expect(
      Object.keys(
        (jsonVariant as { properties: { json: { properties: { fields: { properties: object } } } } }).properties.json
          .properties.fields.properties,
      ),
    ).toEqual([...JSON_TARGETS]);
  });

  it('declares the record schema of each port it emits on', () => {
    const schemas = (o: object) => definition.outputSchemas?.(options(o), RAW_LINE_SCHEMA);
    expect(schemas({ format: 'nginx_error' })).toEqual({ default: errorLogRecordSchema });
    expect(schemas({ format: 'combined' })).toEqual({ default: accessRecordSchema });
    expect(schemas({})).toEqual({ default: accessRecordSchema, error_log: errorLogRecordSchema });
  });

  it('declares error_log output for error-log formats, and an error_log port when auto detects them', () => {
    expect(definition.outputsFor?.(options({ format: 'nginx_error' }))).toEqual({ default: 'error_log' });
    expect(definition.outputsFor?.(options({ format: 'combined' }))).toEqual({ default: 'access' });
    expect(definition.outputsFor?.(options())).toEqual({ default: 'access', error_log: 'error_log' });
    expect(definition.outputsFor?.(options({ candidates: ['combined', 'json'] }))).toEqual({ default: 'access' });
  });

  it('sends error-log lines found by auto to dead letters when no stage reads the error_log port', () => {
    const access = Array.from(
      { length: 3 },
      (_, i) => `192.0.2.${i + 1} - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.0" 200 2326 "-" "curl/8"`,
    ).join('\n');
    const records = () => [...rawRecords(access, 'access.log'), ...rawRecords(fixture('nginx-error.log'), 'error.log')];
    const read = createParse({}, recordingContext({ id: 'parsed' })).process(records());
    expect(read.error_log?.length).toBeGreaterThan(0);
    const unread = createParse({}, recordingContext({ id: 'parsed', readPorts: new Set(['default', 'dead_letter']) }));
    const ports = unread.process(records());
    expect(ports.error_log).toBeUndefined();
    expect(ports.default).toHaveLength(3);
    const dead = (ports.dead_letter ?? []) as DeadLetter[];
    expect(dead).toHaveLength(read.error_log?.length ?? -1);
    expect(dead[0]?.reason).toBe('an error-log line, and no stage reads parsed.error_log');
    expect(dead[0]?.raw).toBe(fixture('nginx-error.log').split('\n')[0]);
    expect(dead[0]?.origin).toMatchObject({ file: 'error.log', line: 1 });
  });

  it('reports bad format strings, zones and candidates before running, with positions', () => {
    const problems = (o: object) => definition.validate?.(options(o), RAW_INPUT) ?? [];
    expect(problems({ format: { apache: '%h %l %j %t' } })).toEqual([
      { path: ['format', 'apache'], message: 'unknown directive %j at column 7 of the apache format' },
    ]);
    const [nginx] = problems({ format: { nginx: '$remote_addr [$time_local] $remote_adr' } });
    expect(nginx?.path).toEqual(['format', 'nginx']);
    expect(nginx?.message).toMatch(/unknown variable \$remote_adr at column 28/);
    expect(problems({ format: { nginx: '$remote_addr $geo_country' }, custom_variables: ['geo_country'] })).toEqual([]);
    expect(problems({ timezone: 'Mars/Olympus' })[0]?.path).toEqual(['timezone']);
    expect(problems({ candidates: ['combined', 'nginx_error'] })).toEqual([]);
    expect(problems({ trusted_proxies: ['10.0.0.0/8', '2001:db8::/129', 'proxy.local'] })).toMatchObject([
      { path: ['trusted_proxies', 1], message: '`2001:db8::/129` is not an IPv4 or IPv6 address or CIDR block' },
      { path: ['trusted_proxies', 2] },
    ]);
    expect(problems({ candidates: ['combined', { apache: '%h%u' }] })[0]?.message).toMatch(/have no text between them/);
    for (const example of definition.examples) expect(definition.validate?.(example, RAW_INPUT)).toEqual([]);
  });
});

describe('parse: explicit format', () => {
  it('parses the Apache documentation example into a new record that keeps the origin', () => {
    const line =
      '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 ' +
      '"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"';
    const input = rawRecords(line);
    const ports = createParse({ format: 'combined' }).process(input);
    expect(ports.dead_letter).toBeUndefined();
    const [rec] = ports.default as EtlRecord[];
    expect(rec).not.toBe(input[0]);
    expect(rec?.[ORIGIN]).toBe(input[0]?.[ORIGIN]);
    expect(rec).toEqual({
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
      [ORIGIN]: input[0]?.[ORIGIN],
    });
  });

  it('sends each line that fits no format to dead_letter with reason, file, line, offset and raw text', () => {
    const text = fixture('oddities.log');
    const { out, dead } = run(text, { format: 'combined' }, '/var/log/nginx/access.log');
    const lines = text.trimEnd().split('\n');
    expect(out.length + dead.length).toBe(lines.length);
    expect(dead).toHaveLength(1);
    const [dl] = dead;
    const offset = Buffer.byteLength(lines.slice(0, -1).join('\n')) + 1;
    expect(dl).toMatchObject({
      stage: 'parsed',
      raw: 'this line is not an access log line at all',
      origin: { source: 'logs', file: '/var/log/nginx/access.log', line: lines.length, offset },
    });
    // `this`, `line` and `is` pass for %h %l %u; the bracket of %t is where the line stops fitting.
    expect(dl?.reason).toBe('combined: expected ` [` after column 11 for %u, found none');
  });

  it('names what did not match and where', () => {
    const reason = (line: string, format: object | string) => run(line, { format }).dead[0]?.reason;
    expect(reason('1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0 200 5', 'common')).toBe(
      'common: expected `" ` after column 43 for %r, found none',
    );
    expect(reason('1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 2x0 5', 'common')).toBe(
      'common: invalid value `2x0` at column 59 for %>s',
    );
    expect(reason('1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 5 extra', 'common')).toBe(
      'common: invalid value `5 extra` at column 63 for %b',
    );
    expect(reason('1.2.3.4 - - [32/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 5', 'common')).toBe(
      'common: invalid value `32/Oct/2000:13:55:36 -0700` at column 14 for %t',
    );
    expect(reason('{"status": 200', 'json')).toMatch(/^json: invalid JSON: /);
  });

  it('dead-letters empty, over-long and truncated lines with their text', () => {
    const ctx = testContext();
    const transform = createParse({ format: 'common', max_line_bytes: 100 }, ctx);
    const origin = { source: 'logs', file: 'a.log', line: 3, offset: 10 };
    const long = `1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /${'a'.repeat(80)} HTTP/1.0" 200 5`;
    const cut = '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /abc';
    const ports = transform.process([
      { message: '', [ORIGIN]: origin },
      { message: long, [ORIGIN]: origin },
      { message: cut, truncated: true, [ORIGIN]: origin },
      { other: 1, [ORIGIN]: origin },
    ]);
    const dead = ports.dead_letter as DeadLetter[];
    expect(dead.map((d) => d.reason)).toEqual([
      'empty line',
      `line of ${long.length} bytes is longer than max_line_bytes (100)`,
      'common: expected `" ` after column 43 for %r, found none (the source truncated this line)',
      'the record has no text `message` to parse',
    ]);
    expect(dead[2]?.raw).toBe(cut);
    expect(dead[1]?.raw).toBe(long);
    expect(dead.every((d) => d.origin?.line === 3 && d.origin.file === 'a.log')).toBe(true);
  });

  it('keeps the bytes of a line that is not UTF-8: raw_base64 in the record and in the dead letter', () => {
    const ctx = testContext();
    const transform = createParse({ format: 'combined' }, ctx);
    const origin = { source: 'logs', file: 'a.log', line: 1, offset: 0 };
    const good = Buffer.from(
      '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /caf\xe9 HTTP/1.0" 200 5 "-" "\xff"',
      'latin1',
    );
    const junk = Buffer.from('not \xfe a log line', 'latin1');
    const raw = (bytes: Buffer): EtlRecord => ({
      message: bytes.toString('utf8'),
      message_base64: bytes.toString('base64'),
      [ORIGIN]: origin,
    });
    const ports = transform.process([raw(good), { message: 'valid line', [ORIGIN]: origin }, raw(junk)]);
    const [record] = ports.default ?? [];
    expect(record).toMatchObject({ path: '/caf\uFFFD', user_agent: '\uFFFD' });
    expect(Buffer.from(record?.raw_base64 as string, 'base64')).toEqual(good);
    const dead = ports.dead_letter as DeadLetter[];
    expect(dead.map((d) => d.raw)).toEqual(['valid line', 'not \uFFFD a log line']);
    expect(dead[0]).not.toHaveProperty('raw_base64');
    expect(Buffer.from(dead[1]?.raw_base64 as string, 'base64')).toEqual(junk);
    // An error-log line too.
    const entry = Buffer.from('2011/09/09 10:42:29 [error] 1234#0: *99 open() "/caf\xe9" failed', 'latin1');
    const errorLog = createParse({ format: 'nginx_error' }, testContext()).process([raw(entry)]);
    expect(errorLog.default?.[0]).toMatchObject({ level: 'error', raw_base64: entry.toString('base64') });
    // A valid line's record says null, so the column exists and is null.
    const valid = transform.process(
      rawRecords('1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 5 "-" "-"\n'),
    );
    expect(valid.default?.[0]?.raw_base64).toBeNull();
  });

  it("says a cut line's size in bytes as read and the setting that cut it, not the size of its decoding", () => {
    const transform = createParse({ format: 'combined' }, testContext());
    const origin = { source: 'logs', file: 'a.log', line: 7, offset: 0 };
    // 65536 bytes that are not UTF-8 decode to 65536 U+FFFD: 196,608 bytes of text.
    const head = Buffer.alloc(65536, 0xff);
    const cut = (extra: object): EtlRecord => ({
      message: head.toString('utf8'),
      message_base64: head.toString('base64'),
      truncated: true,
      line_bytes: 203776,
      max_line_bytes: 65536,
      ...extra,
      [ORIGIN]: origin,
    });
    const dead = transform.process([cut({}), cut({ line_bytes: 262144, line_bytes_at_least: true })])
      .dead_letter as DeadLetter[];
    expect(dead[0]?.reason).toMatch(/\(the source cut this line of 203776 bytes at max_line_bytes \(65536\)\)$/);
    expect(dead[1]?.reason).toMatch(
      /\(the source cut this line of at least 262144 bytes at max_line_bytes \(65536\)\)$/,
    );
    expect(dead[0]?.reason).not.toMatch(/196608|longer than/);
    expect(Buffer.from(dead[0]?.raw_base64 as string, 'base64')).toEqual(head);
    // parse's own limit measures the bytes as read too.
    const small = createParse({ format: 'combined', max_line_bytes: 1000 }, testContext());
    const over = small.process([cut({})]).dead_letter as DeadLetter[];
    expect(over[0]?.reason).toBe(
      'line of 65536 bytes is longer than max_line_bytes (1000) (the source cut this line of 203776 bytes at max_line_bytes (65536))',
    );
  });

  it('counts bytes, not characters, against max_line_bytes', () => {
    const line = `1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /${'é'.repeat(30)} HTTP/1.0" 200 5`;
    expect(line.length).toBeLessThan(100);
    expect(run(line, { format: 'common', max_line_bytes: 100 }).dead[0]?.reason).toMatch(/^line of 123 bytes/);
    expect(run(line, { format: 'common', max_line_bytes: 123 }).out).toHaveLength(1);
  });

  it('ignores the CR of CRLF files', () => {
    const { out, dead } = run(fixture('crlf.log'), { format: 'combined' });
    expect(dead).toEqual([]);
    expect(out[0]).toMatchObject({ path: '/crlf', user_agent: 'curl/8' });
  });

  it('parses error logs into error_log records', () => {
    const { out, dead } = run(fixture('apache-error.log') + fixture('nginx-error.log'), { format: 'error_log' });
    expect(dead).toEqual([]);
    expect(out.map((r) => r.server)).toEqual(['apache', 'apache', 'apache', 'apache', 'nginx', 'nginx', 'nginx']);
  });
});

describe('parse: format auto', () => {
  const files = ['mixed/access-common.log', 'mixed/nginx-json.log', 'mixed/nginx-request-time.log'];

  it('decides per file, says so in the log and metrics, and parses a mixed directory right', () => {
    const ctx = testContext();
    const transform = createParse({}, ctx);
    // Interleave the three files in one batch, as a directory source reading them concurrently would.
    const perFile = files.map((f) => rawRecords(fixture(f), `/logs/${f}`));
    const batch: EtlRecord[] = [];
    for (let i = 0; i < 4; i++) for (const records of perFile) if (records[i]) batch.push(records[i] as EtlRecord);
    const ports = transform.process(batch);
    expect(ports.dead_letter).toBeUndefined();
    const out = ports.default as EtlRecord[];
    expect(out).toHaveLength(10);

    const byFile = (f: string) => out.filter((r) => r[ORIGIN]?.file === `/logs/${f}`);
    expect(byFile(files[0] as string).map((r) => [r.client_ip, r.status, r.bytes])).toEqual([
      ['127.0.0.1', 200, 2326],
      ['192.0.2.7', 302, null],
      ['2001:db8::17', 404, 209],
      ['198.51.100.4', 200, null],
    ]);
    expect(byFile(files[1] as string)[1]).toMatchObject({
      client_ip: '2001:db8::2',
      user: 'bob',
      status: 201,
      request_time_ms: 120,
      referrer: 'https://example.com/"q"',
      timestamp: '2024-03-12T08:15:03.000Z',
    });
    expect(byFile(files[1] as string)[2]).toMatchObject({
      path: '/café',
      user_agent: null,
      extra: { upstream_cache_status: null },
    });
    expect(byFile(files[2] as string).map((r) => [r.request_time_ms, r.method, r.path, r.query])).toEqual([
      [2, 'GET', '/index.html', null],
      [215, 'GET', '/search', 'q=café'],
      [1, null, null, null],
    ]);

    const decisions = ctx.logs.filter((l) => l.message === 'parse: detected format').map((l) => l.fields);
    expect(decisions).toEqual([
      { file: '/logs/mixed/access-common.log', format: 'common', confidence: 1, sample_lines: 4 },
      { file: '/logs/mixed/nginx-json.log', format: 'json', confidence: 1, sample_lines: 3 },
      {
        file: '/logs/mixed/nginx-request-time.log',
        format: 'nginx_combined_request_time',
        confidence: 1,
        sample_lines: 3,
      },
    ]);
    expect(ctx.values.get('etl_parse_detected_format{format=common}')).toBe(1);
    expect(ctx.values.get('etl_parse_detected_format{format=json}')).toBe(1);
    expect(ctx.values.get('etl_parse_detection_confidence{format=nginx_combined_request_time}')).toBe(1);
  });

  it('falls back per line when a file mixes formats, and counts it', () => {
    const ctx = testContext();
    const transform = createParse({ sample_lines: 4 }, ctx);
    const common = fixture('mixed/access-common.log');
    const json = fixture('mixed/nginx-json.log').split('\n')[0];
    expect(transform.process(rawRecords(common, 'x.log')).default).toHaveLength(4);
    const ports = transform.process(rawRecords(`${json}\n${common}`, 'x.log'));
    expect(ports.dead_letter).toBeUndefined();
    expect((ports.default as EtlRecord[]).map((r) => r.status)).toEqual([200, 200, 302, 404, 200]);
    expect(ctx.values.get('etl_parse_fallback_lines_total{format=json}')).toBe(1);
  });

  it('revises a decision made on a small first batch once the sample is complete', () => {
    const ctx = testContext();
    const transform = createParse({ sample_lines: 5 }, ctx);
    const common = fixture('mixed/access-common.log').split('\n')[0] as string;
    const timed = fixture('mixed/nginx-request-time.log').split('\n')[0] as string;
    transform.process(rawRecords(common, 'y.log'));
    transform.process(rawRecords([timed, timed, timed, timed].join('\n'), 'y.log'));
    const infos = ctx.logs
      .filter((l) => l.level === 'info')
      .map((l) => [l.message, l.fields?.format, l.fields?.sample_lines]);
    expect(infos).toEqual([
      ['parse: detected format', 'common', 1],
      ['parse: detected format revised', 'nginx_combined_request_time', 5],
    ]);
    expect(ctx.values.get('etl_parse_detected_format{format=common}')).toBe(0);
    expect(ctx.values.get('etl_parse_detected_format{format=nginx_combined_request_time}')).toBe(1);
  });

  it('explains a broken line while sampling with the format that fits the file best so far', () => {
    const json = fixture('mixed/nginx-json.log').split('\n')[0] as string;
    const ports = createParse().process(rawRecords(`${json}\n${json.slice(0, 40)}`, 'j.log'));
    expect((ports.dead_letter as DeadLetter[])[0]?.reason).toMatch(/^no candidate format fits; json: invalid JSON/);
  });

  it("warns when nothing fits and dead-letters with the preferred format's reason", () => {
    const ctx = testContext();
    const ports = createParse({}, ctx).process(rawRecords('hello world\n', 'z.log'));
    expect((ports.dead_letter as DeadLetter[])[0]?.reason).toMatch(/^no candidate format fits; combined: expected ` `/);
    expect(ctx.logs.find((l) => l.level === 'warn')?.fields).toMatchObject({
      file: 'z.log',
      format: 'none',
      confidence: 0,
    });
  });
});
