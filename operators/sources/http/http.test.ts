/**
 * The http source against a real server on loopback, with an output double whose credit and durability the
 * test controls (test/postgres/http-source.test.ts runs it in a pipeline into PostgreSQL).
 */
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import type { BatchOptions, Emitted, SourceOutput } from '../../../engine/operator.ts';
import { type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import { createAjv } from '../../../engine/schema/ajv.ts';
import { type RecordingContext, recordingContext } from '../../../test/support/context.ts';
import { createHttpSource, type HttpSource } from './http.ts';
import { type HttpSourceOptions, schema } from './schema.ts';

const API_KEY = 'test-key-0123456789abcdef';

function options(patch: Partial<HttpSourceOptions> = {}): HttpSourceOptions {
  const value: Record<string, unknown> = { listen: '127.0.0.1:0', ...patch };
  const validate = createAjv().compile(schema);
  if (!validate(value)) throw new Error(JSON.stringify(validate.errors));
  return value as HttpSourceOptions;
}

/** A deferred promise the test settles. */
function deferred<T = void>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: Error) => void;
} {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

interface Batch {
  records: EtlRecord[];
  deadLetters: readonly EtlRecord[];
  bytes: number | undefined;
  traceparent: string | undefined;
  tracestate: string | undefined;
  durable: ReturnType<typeof deferred<void>>;
}

/** A SourceOutput whose credit (`hold`) and durability (each batch's `durable`) the test controls. */
class Output implements SourceOutput {
  readonly controller = new AbortController();
  readonly stopping = this.controller.signal;
  readonly batches: Batch[] = [];
  /** While set, emit waits for it (no credit). */
  hold: Promise<void> | undefined;
  /** Resolves the next time emit is called. */
  private emitting = deferred<Batch>();
  private batchWaiters: Array<() => void> = [];

  async emit(records: EtlRecord[], _position?: unknown, bytes?: number, opts?: BatchOptions): Promise<Emitted> {
    const batch: Batch = {
      records,
      deadLetters: opts?.deadLetters ?? [],
      bytes,
      traceparent: opts?.traceparent,
      tracestate: opts?.tracestate,
      durable: deferred<void>(),
    };
    batch.durable.promise.catch(() => {});
    this.emitting.resolve(batch);
    this.emitting = deferred<Batch>();
    if (this.hold) await this.hold;
    if (this.stopping.aborted) return { sent: false, durable: () => Promise.reject(new Error('not sent')) };
    this.batches.push(batch);
    for (const wake of this.batchWaiters.splice(0)) wake();
    return { sent: true, durable: () => batch.durable.promise };
  }
  progress(): void {}
  onCommitted(): void {}
  inputError(): void {}

  /** The next call of emit (before it has credit). */
  nextEmit(): Promise<Batch> {
    return this.emitting.promise;
  }
  /** Resolves once `n` batches were sent. */
  async sent(n: number): Promise<Batch[]> {
    while (this.batches.length < n) await new Promise<void>((resolve) => this.batchWaiters.push(resolve));
    return this.batches;
  }
  /** Makes every batch sent so far durable. */
  commitAll(): void {
    for (const b of this.batches) b.durable.resolve();
  }
}

let ctx: RecordingContext & { restoredPosition: undefined; batchMaxRecords: number };
let source: HttpSource | undefined;
let out: Output;
let running: Promise<void> | undefined;

async function start(patch: Partial<HttpSourceOptions> = {}, batchMaxRecords = 1000): Promise<string> {
  ctx = { ...recordingContext({ id: 'pushed' }), restoredPosition: undefined, batchMaxRecords };
  source = await createHttpSource(options(patch), ctx);
  out = new Output();
  running = source.run(out);
  const { port } = await source.listening;
  return `http://127.0.0.1:${port}${patch.path ?? '/ingest'}`;
}

afterEach(async () => {
  out?.commitAll();
  out?.controller.abort();
  await running;
  await source?.close();
  source = undefined;
  running = undefined;
});

function post(url: string, body: string | Buffer, headers: Record<string, string>): Promise<Response> {
  return fetch(url, { method: 'POST', headers, body });
}

/** Posts, and once its batches are sent makes them durable: the answer comes after that. */
async function postDurable(url: string, body: string | Buffer, headers: Record<string, string>, batches = 1) {
  const answer = post(url, body, headers);
  await out.sent(batches);
  out.commitAll();
  const res = await answer;
  return { res, json: (await res.json()) as Record<string, unknown> };
}

/** A record's fields, without the origin riding on a symbol key. */
function fields(record: EtlRecord | undefined): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record ?? {}));
}

const LINE = '203.0.113.7 - - [10/Oct/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 512';

describe('http source', () => {
  it('takes text/plain lines as `{ message }` records with their origin', async () => {
    const url = await start();
    const body = `${LINE}\r\nsecond\n\nlast`;
    const { res, json } = await postDurable(url, body, { 'content-type': 'text/plain', 'x-request-id': 'req-1' });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('req-1');
    expect(json).toEqual({ accepted: 4, dead_letters: 0, request_id: 'req-1' });
    const [batch] = out.batches;
    expect(batch?.records.map((r) => r.message)).toEqual([LINE, 'second', '', 'last']);
    expect(batch?.records.map((r) => r[ORIGIN])).toEqual([
      { source: 'pushed', file: 'http:req-1@127.0.0.1', offset: 0, line: 1 },
      { source: 'pushed', file: 'http:req-1@127.0.0.1', offset: LINE.length + 2, line: 2 },
      { source: 'pushed', file: 'http:req-1@127.0.0.1', offset: LINE.length + 9, line: 3 },
      { source: 'pushed', file: 'http:req-1@127.0.0.1', offset: LINE.length + 10, line: 4 },
    ]);
    expect(batch?.bytes).toBe(Buffer.byteLength(body));
  });

  it('keeps the bytes of a line that is not UTF-8, and makes up a request id for an unusable one', async () => {
    const url = await start();
    const body = Buffer.concat([Buffer.from('ok\n'), Buffer.from([0x66, 0xff, 0x6f])]);
    const { json } = await postDurable(url, body, { 'content-type': 'text/plain', 'x-request-id': 'a b/../c' });
    expect(json.request_id).toMatch(/^[0-9a-f-]{36}$/);
    const records = out.batches[0]?.records ?? [];
    expect(fields(records[0])).toEqual({ message: 'ok' });
    expect(fields(records[1])).toEqual({
      message: 'f\uFFFDo',
      message_base64: Buffer.from([0x66, 0xff, 0x6f]).toString('base64'),
    });
  });

  it('takes NDJSON: strings as messages, objects as dead letters with records: raw, bad lines as dead letters', async () => {
    const url = await start();
    const body = `${JSON.stringify(LINE)}\n{"a":\n\n{"a":1}\n42\n`;
    const { res, json } = await postDurable(url, body, { 'content-type': 'application/x-ndjson' });
    expect(res.status).toBe(200);
    expect(json).toMatchObject({ accepted: 1, dead_letters: 3 });
    const [batch] = out.batches;
    expect(batch?.records.map((r) => r.message)).toEqual([LINE]);
    expect(batch?.deadLetters.map((d) => [d.stage, d.raw, d.origin])).toEqual([
      ['pushed', '{"a":', { source: 'pushed', file: `http:${json.request_id}@127.0.0.1`, offset: 74, line: 2 }],
      ['pushed', '{"a":1}', { source: 'pushed', file: `http:${json.request_id}@127.0.0.1`, offset: 81, line: 4 }],
      ['pushed', '42', { source: 'pushed', file: `http:${json.request_id}@127.0.0.1`, offset: 89, line: 5 }],
    ]);
    expect(batch?.deadLetters.map((d) => d.reason)).toEqual([
      expect.stringMatching(/^not valid JSON: /),
      expect.stringMatching(/JSON object where lines are expected/),
      'a JSON number, not an object or a string',
    ]);
  });

  it('takes NDJSON objects with their fields as they are with records: json', async () => {
    const url = await start({ records: 'json' });
    const body = '{"status":200,"path":"/a"}\n"a line"\n[1]\n';
    const { json } = await postDurable(url, body, { 'content-type': 'application/x-ndjson' });
    expect(json).toMatchObject({ accepted: 2, dead_letters: 1 });
    expect(out.batches[0]?.records.map(fields)).toEqual([{ status: 200, path: '/a' }, { message: 'a line' }]);
    expect(out.batches[0]?.deadLetters[0]?.reason).toBe('a JSON array, not an object or a string');
  });

  it('takes a JSON array, gzip-compressed, numbering its elements', async () => {
    const url = await start({ records: 'json' });
    const body = gzipSync(JSON.stringify([LINE, { status: 404 }, null]));
    const { res, json } = await postDurable(url, body, {
      'content-type': 'application/json',
      'content-encoding': 'gzip',
    });
    expect(res.status).toBe(200);
    expect(json).toMatchObject({ accepted: 2, dead_letters: 1 });
    const [batch] = out.batches;
    expect(batch?.records.map(fields)).toEqual([{ message: LINE }, { status: 404 }]);
    expect(batch?.records.map((r) => r[ORIGIN]?.line)).toEqual([1, 2]);
    expect(batch?.deadLetters.map((d) => [d.raw, (d.origin as { line: number }).line])).toEqual([['null', 3]]);
  });

  it('takes gzip-compressed text and NDJSON', async () => {
    const url = await start();
    const lines = Array.from({ length: 500 }, (_, i) => `${LINE} ${i}`);
    const gz = { 'content-type': 'text/plain', 'content-encoding': 'gzip' };
    const { json } = await postDurable(url, gzipSync(lines.join('\n')), gz);
    expect(json).toMatchObject({ accepted: 500 });
    expect(out.batches[0]?.records.map((r) => r.message)).toEqual(lines);
  });

  it('refuses a body it cannot read with 400 and keeps nothing of it', async () => {
    const url = await start();
    const badJson = await post(url, '[1,', { 'content-type': 'application/json' });
    expect(badJson.status).toBe(400);
    expect(((await badJson.json()) as { error: string }).error).toMatch(/not valid JSON/);
    const badGzip = await post(url, 'plain', { 'content-type': 'text/plain', 'content-encoding': 'gzip' });
    expect(badGzip.status).toBe(400);
    expect(((await badGzip.json()) as { error: string }).error).toMatch(/not valid gzip/);
    const encoding = await post(url, 'x', { 'content-type': 'text/plain', 'content-encoding': 'br' });
    expect(encoding.status).toBe(415);
    const type = await post(url, 'x', { 'content-type': 'image/png' });
    expect(type.status).toBe(415);
    expect(out.batches).toEqual([]);
  });

  it('answers 401 without a valid API key, and takes it as Bearer or X-API-Key', async () => {
    const url = await start({ api_key: API_KEY });
    const none = await post(url, 'x', { 'content-type': 'text/plain' });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const wrong = await post(url, 'x', { 'content-type': 'text/plain', authorization: `Bearer ${API_KEY}x` });
    expect(wrong.status).toBe(401);
    const short = await post(url, 'x', { 'content-type': 'text/plain', 'x-api-key': 'test' });
    expect(short.status).toBe(401);
    expect(out.batches).toEqual([]);
    const bearer = await postDurable(url, 'a', { 'content-type': 'text/plain', authorization: `Bearer ${API_KEY}` });
    expect(bearer.res.status).toBe(200);
    const header = await postDurable(url, 'b', { 'content-type': 'text/plain', 'x-api-key': API_KEY }, 2);
    expect(header.res.status).toBe(200);
  });

  it('answers 413 to a body over max_body_bytes, as sent or once gunzipped', async () => {
    const url = await start({ max_body_bytes: 4096 });
    const big = await post(url, 'x'.repeat(5000), { 'content-type': 'text/plain' });
    expect(big.status).toBe(413);
    // 1 MiB of zeros gzips to about 1 KiB: small as sent, refused once it grows past the limit.
    const bomb = gzipSync(Buffer.alloc(1 << 20));
    expect(bomb.length).toBeLessThan(4096);
    const gz = await post(url, bomb, { 'content-type': 'text/plain', 'content-encoding': 'gzip' });
    expect(gz.status).toBe(413);
    expect(out.batches).toEqual([]);
  });

  it('answers only once the records are durable, and 500 when they never are', async () => {
    const url = await start();
    let answered = false;
    const answer = post(url, 'a\nb', { 'content-type': 'text/plain' }).then((res) => {
      answered = true;
      return res;
    });
    const [batch] = await out.sent(1);
    // Sent downstream, not durable: no answer yet (a turn of the event loop would have delivered one).
    await new Promise((resolve) => setImmediate(resolve));
    expect(answered).toBe(false);
    batch?.durable.resolve();
    expect((await answer).status).toBe(200);

    const failing = post(url, 'c', { 'content-type': 'text/plain' });
    const [, second] = await out.sent(2);
    second?.durable.reject(new Error('the run ended before the batch was in a committed checkpoint'));
    const res = await failing;
    expect(res.status).toBe(500);
    expect(((await res.json()) as { error: string }).error).toMatch(/not durable: the run ended/);
  });

  it('packs small requests into one batch and spreads a large one over several', async () => {
    const url = await start({}, 3);
    const credit = deferred<void>();
    out.hold = credit.promise; // no credit: requests queue up behind the first
    const first = post(url, 'a', { 'content-type': 'text/plain' });
    await out.nextEmit();
    const rest = [
      post(url, 'b', { 'content-type': 'text/plain' }),
      post(url, 'c\nd\ne\nf', { 'content-type': 'text/plain' }),
    ];
    await until(() => (source as HttpSource).waiting === 2);
    out.hold = undefined;
    credit.resolve();
    await out.sent(3);
    out.commitAll();
    for (const res of await Promise.all([first, ...rest])) expect(res.status).toBe(200);
    expect(out.batches.map((b) => b.records.map((r) => r.message))).toEqual([['a'], ['b', 'c', 'd'], ['e', 'f']]);
  });

  it('refuses with 429 past max_waiting_requests and 503 past max_wait_ms, with Retry-After, keeping nothing', async () => {
    const url = await start({ max_waiting_requests: 1, max_wait_ms: 200, retry_after_seconds: 7 });
    const credit = deferred<void>();
    out.hold = credit.promise;
    const taken = post(url, 'a', { 'content-type': 'text/plain' });
    await out.nextEmit();
    const waits = post(url, 'b', { 'content-type': 'text/plain' });
    await until(() => (source as HttpSource).waiting === 1);
    const refused = await post(url, 'c', { 'content-type': 'text/plain' });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('7');
    expect(((await refused.json()) as { error: string }).error).toMatch(/max_waiting_requests/);
    // Nobody gives credit: the waiting request times out.
    const late = await waits;
    expect(late.status).toBe(503);
    expect(late.headers.get('retry-after')).toBe('7');
    expect(((await late.json()) as { error: string }).error).toMatch(/within 200 ms \(max_wait_ms\)/);
    out.hold = undefined;
    credit.resolve();
    await out.sent(1);
    out.commitAll();
    expect((await taken).status).toBe(200);
    expect(out.batches.map((b) => b.records.map((r) => r.message))).toEqual([['a']]);
    expect(ctx.values.get('etl_http_source_requests_total{status=429}')).toBe(1);
    expect(ctx.values.get('etl_http_source_requests_total{status=503}')).toBe(1);
    expect(ctx.values.get('etl_http_source_requests_total{status=200}')).toBe(1);
    expect(ctx.values.get('etl_http_source_waiting_requests')).toBe(0);
  });

  it('on stop refuses new and waiting requests with 503 and answers those sent once durable', async () => {
    const url = await start({ max_wait_ms: 60_000 });
    const credit = deferred<void>();
    const sent = post(url, 'a', { 'content-type': 'text/plain' });
    await out.sent(1);
    out.hold = credit.promise;
    const held = post(url, 'b', { 'content-type': 'text/plain' });
    await out.nextEmit();
    const waiting = post(url, 'c', { 'content-type': 'text/plain' });
    await until(() => (source as HttpSource).waiting === 1);
    out.controller.abort();
    credit.resolve();
    await running;
    for (const res of await Promise.all([held, waiting])) {
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
    }
    const after = await post(url, 'd', { 'content-type': 'text/plain' });
    expect(after.status).toBe(503);
    const closed = (source as HttpSource).close();
    out.commitAll();
    expect((await sent).status).toBe(200);
    await closed;
    await expect(post(url, 'e', { 'content-type': 'text/plain' })).rejects.toThrow();
  });

  it('passes a valid traceparent and its tracestate with the batch, never mixing parents, and ignores an invalid one', async () => {
    const url = await start();
    const credit = deferred<void>();
    out.hold = credit.promise;
    const parent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const first = post(url, 'a', { 'content-type': 'text/plain' });
    await out.nextEmit();
    const rest = [
      post(url, 'b', { 'content-type': 'text/plain', traceparent: parent, tracestate: 'vendor=1' }),
      post(url, 'c', { 'content-type': 'text/plain', traceparent: parent, tracestate: 'vendor=1' }),
      post(url, 'd', { 'content-type': 'text/plain', traceparent: '00-zz-00f067aa0ba902b7-01' }),
    ];
    await until(() => (source as HttpSource).waiting === 3);
    out.hold = undefined;
    credit.resolve();
    await out.sent(3);
    out.commitAll();
    for (const res of await Promise.all([first, ...rest])) expect(res.status).toBe(200);
    expect(out.batches.map((b) => b.records.map((r) => r.message))).toEqual([['a'], ['b', 'c'], ['d']]);
    // The engine continues the client's trace from these (BatchOptions); an invalid header is not passed on.
    expect(out.batches.map((b) => [b.traceparent, b.tracestate])).toEqual([
      [undefined, undefined],
      [parent, 'vendor=1'],
      [undefined, undefined],
    ]);
  });

  it('fails its run with a clear message when the port is taken, and binds nothing at create', async () => {
    const url = await start();
    const port = new URL(url).port;
    const other = await createHttpSource(options({ listen: `127.0.0.1:${port}` }), ctx);
    const otherOut = new Output();
    await expect(other.run(otherOut)).rejects.toThrow(`cannot listen on 127.0.0.1:${port}: `);
    await expect(other.listening).rejects.toThrow(/cannot listen/);
    await other.close();
    // The first source still answers.
    const { res } = await postDurable(url, 'a', { 'content-type': 'text/plain' });
    expect(res.status).toBe(200);
  });

  it('counts a request whose body is still arriving against max_waiting_requests, and frees its place after', async () => {
    const url = await start({ max_waiting_requests: 1, max_body_bytes: 4096 });
    let push!: ReadableStreamDefaultController<Uint8Array>;
    const slowBody = new ReadableStream<Uint8Array>({
      start(controller) {
        push = controller;
      },
    });
    const slow = fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: slowBody,
      duplex: 'half',
    } as RequestInit);
    push.enqueue(new TextEncoder().encode('first '));
    await until(() => (source as HttpSource).beingRead === 1);
    const refused = await post(url, 'x', { 'content-type': 'text/plain' });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    push.enqueue(new TextEncoder().encode('line'));
    push.close();
    await out.sent(1);
    out.commitAll();
    expect((await slow).status).toBe(200);
    expect(out.batches[0]?.records.map((r) => r.message)).toEqual(['first line']);
    // A body refused (413) gives its place back too.
    expect((await post(url, 'y'.repeat(5000), { 'content-type': 'text/plain' })).status).toBe(413);
    const { res } = await postDurable(url, 'again', { 'content-type': 'text/plain' }, 2);
    expect(res.status).toBe(200);
  });
});

/** Resolves once `condition` holds, checked at every turn of the event loop (requests arrive on I/O). */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}
