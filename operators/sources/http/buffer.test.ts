/**
 * The http source with `buffer` against a real server on loopback and a real directory, with an output double
 * that never makes a batch durable unless the test says so: a request is answered once in the log, the log is
 * sent on in order with its position, a rerun from a checkpointed position sends on exactly what follows it (also
 * from the middle of a large request), a full log answers 503 with Retry-After until a commit frees segments,
 * and two sources cannot share a directory (test/postgres/http-buffer.slow.test.ts crashes the real CLI).
 */
import { appendFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import type { BatchOptions, Emitted, SourceOutput } from '../../../engine/operator.ts';
import { type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import { createAjv } from '../../../engine/schema/ajv.ts';
import { type RecordingContext, recordingContext } from '../../../test/support/context.ts';
import { type BufferPosition, parsePosition } from './buffered-intake.ts';
import { createHttpSource, type HttpSource } from './http.ts';
import definition from './index.ts';
import { type HttpSourceOptions, schema } from './schema.ts';

interface Batch {
  readonly records: EtlRecord[];
  readonly deadLetters: readonly EtlRecord[];
  readonly position: BufferPosition;
  readonly traceparent: string | undefined;
}

/** Records what is emitted; credit is held while `hold` is set; durability never comes (no checkpoint commits). */
class Output implements SourceOutput {
  readonly controller = new AbortController();
  readonly stopping = this.controller.signal;
  readonly batches: Batch[] = [];
  hold: Promise<void> | undefined;
  committed: ((position: unknown) => void) | undefined;
  private waiters: Array<() => void> = [];

  async emit(records: EtlRecord[], position?: unknown, _bytes?: number, opts?: BatchOptions): Promise<Emitted> {
    if (this.hold) await this.hold;
    if (this.stopping.aborted) return { sent: false, durable: () => Promise.reject(new Error('not sent')) };
    this.batches.push({
      records,
      deadLetters: opts?.deadLetters ?? [],
      position: parsePosition(position) as BufferPosition,
      traceparent: opts?.traceparent,
    });
    for (const wake of this.waiters.splice(0)) wake();
    return { sent: true, durable: () => new Promise<void>(() => {}) };
  }
  progress(): void {}
  onCommitted(listener: (position: unknown) => void): void {
    this.committed = listener;
  }
  inputError(): void {}

  async sent(records: number): Promise<EtlRecord[]> {
    for (;;) {
      const all = this.batches.flatMap((b) => b.records);
      if (all.length >= records) return all;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }
}

interface Running {
  readonly url: string;
  readonly source: HttpSource;
  readonly out: Output;
  readonly ctx: RecordingContext;
  stop(): Promise<void>;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'etl-http-buffer-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function options(dir: string, buffer: Record<string, unknown> = {}): HttpSourceOptions {
  const value: Record<string, unknown> = { listen: '127.0.0.1:0', buffer: { path: join(dir, 'wal'), ...buffer } };
  const validate = createAjv().compile(schema);
  if (!validate(value)) throw new Error(JSON.stringify(validate.errors));
  return value as HttpSourceOptions;
}

async function start(
  dir: string,
  {
    restoredPosition,
    batchMaxRecords = 1000,
    buffer = {},
  }: { restoredPosition?: unknown; batchMaxRecords?: number; buffer?: Record<string, unknown> } = {},
): Promise<Running> {
  const ctx = { ...recordingContext({ id: 'pushed', dataDir: dir, baseDir: dir }), restoredPosition, batchMaxRecords };
  const source = await createHttpSource(options(dir, buffer), ctx);
  const out = new Output();
  const running = source.run(out);
  running.catch(() => {});
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    out.controller.abort();
    await running.catch(() => {});
    await source.close();
  };
  cleanups.push(stop);
  const { port } = await source.listening;
  return { url: `http://127.0.0.1:${port}/ingest`, source, out, ctx, stop };
}

function lines(from: number, count: number): string {
  return Array.from({ length: count }, (_, i) => `line ${from + i}`).join('\n');
}

function post(url: string, body: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'text/plain', 'content-encoding': 'gzip', ...headers },
    body: gzipSync(body),
  });
}

describe('http source with a write-ahead buffer', () => {
  it('answers 200 once the request is in the log, before any checkpoint commits, and sends it on with its position', async () => {
    const dir = await tempDir();
    const run = await start(dir);
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const res = await post(run.url, lines(0, 3), { 'x-request-id': 'req-1', traceparent });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ accepted: 3, dead_letters: 0, request_id: 'req-1' });
    const ndjson = await fetch(run.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', 'x-request-id': 'req-2' },
      body: '"fine"\n{not json\n',
    });
    expect(await ndjson.json()).toEqual({ accepted: 1, dead_letters: 1, request_id: 'req-2' });
    const records = await run.out.sent(4);
    expect(records.map((r) => r.message)).toEqual(['line 0', 'line 1', 'line 2', 'fine']);
    expect(records[1]?.[ORIGIN]).toEqual({ source: 'pushed', file: 'http:req-1@127.0.0.1', offset: 7, line: 2 });
    const [first, second] = run.out.batches;
    expect(first?.traceparent).toBe(traceparent);
    expect(second?.deadLetters.map((d) => [d.reason, d.origin])).toEqual([
      [
        expect.stringContaining('not valid JSON'),
        { source: 'pushed', file: 'http:req-2@127.0.0.1', offset: 7, line: 2 },
      ],
    ]);
    expect(second?.position.offset).toBeGreaterThan(first?.position.offset as number);
    expect(second?.position.record).toBe(0);
  });

  it('sends on, after a restart, exactly what follows the checkpointed position: from the log, dead letters once', async () => {
    const dir = await tempDir();
    const first = await start(dir, { batchMaxRecords: 10 });
    // 25 lines and a dead letter in one request: three batches, the dead letter with the first.
    const body = `${Array.from({ length: 25 }, (_, i) => JSON.stringify(`big ${i}`)).join('\n')}\n[1]\n`;
    const big = await fetch(first.url, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body });
    expect(big.status).toBe(200);
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    expect((await post(first.url, lines(100, 5), { traceparent })).status).toBe(200);
    await first.out.sent(30);
    const positions = first.out.batches.map((b) => b.position);
    expect(positions.map((p) => p.record)).toEqual([10, 20, 0, 0]);
    expect(first.out.batches[0]?.deadLetters).toHaveLength(1);
    await first.stop();

    // A checkpoint committed after the first batch (10 of the 25 records): the rerun sends the other 15, no dead letter.
    const second = await start(dir, { restoredPosition: positions[0], batchMaxRecords: 10 });
    const replayed = await second.out.sent(20);
    expect(replayed.map((r) => r.message)).toEqual([
      ...Array.from({ length: 15 }, (_, i) => `big ${i + 10}`),
      ...lines(100, 5).split('\n'),
    ]);
    expect(second.out.batches.flatMap((b) => b.deadLetters)).toEqual([]);
    // Read back from the log, the last request still carries its trace context (and so has a batch of its own).
    expect(second.out.batches.map((b) => [b.records.length, b.traceparent])).toEqual([
      [10, undefined],
      [5, undefined],
      [5, traceparent],
    ]);
    expect(replayed[0]?.[ORIGIN]).toMatchObject({ source: 'pushed', line: 11 });
    // A new request goes after the replayed ones.
    expect((await post(second.url, lines(200, 1))).status).toBe(200);
    expect((await second.out.sent(21))[20]?.message).toBe('line 200');
    await second.stop();

    // Everything committed: a rerun sends nothing, and takes new requests.
    const last = second.out.batches.at(-1)?.position;
    const third = await start(dir, { restoredPosition: last });
    expect((await post(third.url, lines(300, 1))).status).toBe(200);
    expect((await third.out.sent(1)).map((r) => r.message)).toEqual(['line 300']);
  });

  it('answers 503 with Retry-After when the log is full, and takes requests again once a commit frees segments', async () => {
    const dir = await tempDir();
    const run = await start(dir, { buffer: { max_bytes: 65536, segment_bytes: 8192 } });
    let release!: () => void;
    run.out.hold = new Promise<void>((resolve) => {
      release = resolve;
    });
    const statuses: number[] = [];
    let refused: Response | undefined;
    for (let i = 0; i < 100 && !refused; i++) {
      const res = await post(run.url, lines(i * 50, 50));
      statuses.push(res.status);
      if (res.status !== 200) refused = res;
    }
    expect(refused?.status).toBe(503);
    expect(refused?.headers.get('retry-after')).toBe('1');
    expect(((await refused?.json()) as { error?: string } | undefined)?.error).toContain('buffer.max_bytes');
    const accepted = statuses.filter((s) => s === 200).length;
    expect(accepted).toBeGreaterThan(3);
    // Sent downstream but not committed: still full.
    run.out.hold = undefined;
    release();
    await run.out.sent(accepted * 50);
    expect((await post(run.url, lines(0, 50))).status).toBe(503);
    // A checkpoint commits what was sent: its segments go, and requests are taken again.
    const segments = async () => (await readdir(join(dir, 'wal'))).filter((n) => n.endsWith('.wal')).length;
    const before = await segments();
    run.out.committed?.(run.out.batches.at(-1)?.position);
    await expect.poll(segments).toBeLessThan(before);
    expect((await post(run.url, lines(0, 50))).status).toBe(200);
  });

  it('cuts a torn tail on start with a warning, and sends on only the entries that check out', async () => {
    const dir = await tempDir();
    const first = await start(dir);
    expect((await post(first.url, lines(0, 2))).status).toBe(200);
    expect((await post(first.url, lines(2, 2))).status).toBe(200);
    await first.out.sent(4);
    await first.stop();
    // A third entry cut short by a crash: its header and part of its payload.
    const [segment] = (await readdir(join(dir, 'wal'))).filter((n) => n.endsWith('.wal'));
    const header = Buffer.alloc(8);
    header.writeUInt32BE(500, 0);
    await appendFile(join(dir, 'wal', segment as string), Buffer.concat([header, Buffer.from('{"b":12,"r":[[{"mess')]));

    const second = await start(dir);
    const warning = await second.ctx.logged('truncated');
    expect(warning.level).toBe('warn');
    expect(warning.fields).toMatchObject({ dropped_bytes: 28 });
    expect((await post(second.url, lines(4, 1))).status).toBe(200);
    expect((await second.out.sent(5)).map((r) => r.message)).toEqual(lines(0, 5).split('\n'));
  });

  it('answers 413 for a request that would not fit in the whole log', async () => {
    const dir = await tempDir();
    const run = await start(dir, { buffer: { max_bytes: 65536, segment_bytes: 8192 } });
    const res = await post(run.url, lines(0, 5000));
    expect(res.status).toBe(413);
  });

  it('checks that segments are small enough for the log to drain, and warns of a log smaller than two bodies', () => {
    const problems = (buffer: Record<string, unknown>) =>
      (definition.validate?.(options('/tmp', buffer), { inputSchema: undefined }) ?? []).map((p) => [
        p.path.join('.'),
        p.severity ?? 'error',
      ]);
    expect(problems({ max_bytes: 1 << 30, segment_bytes: 1 << 24 })).toEqual([]);
    expect(problems({ max_bytes: 1 << 22, segment_bytes: 1 << 21 })).toEqual([
      ['buffer.segment_bytes', 'error'],
      ['buffer.max_bytes', 'warning'],
    ]);
  });

  it('refuses to run on a directory another source holds', async () => {
    const dir = await tempDir();
    await start(dir);
    const ctx = {
      ...recordingContext({ id: 'other', dataDir: dir, baseDir: dir }),
      restoredPosition: undefined,
      batchMaxRecords: 100,
    };
    const other = await createHttpSource(options(dir), ctx);
    cleanups.push(() => other.close());
    await expect(other.run(new Output())).rejects.toMatchObject({ code: 'ETL_LOCKED' });
  });
});
