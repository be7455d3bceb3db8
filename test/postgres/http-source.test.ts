/**
 * The http source in a real pipeline (http → parse → postgres, loaded from YAML) against the PostgreSQL server:
 * a 200 means the rows are committed; a table the test locks makes the pipeline saturate (429/503 with
 * Retry-After, never unbounded buffering); an aborted run answers no 2xx and leaves no rows.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { PG_URL, serverQuery } from './helpers.ts';
import { type HttpRun, startHttpPipeline } from './http-pipeline.ts';

interface Running extends HttpRun {
  readonly schema: string;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Runs http → parse → postgres in a directory and schema of its own, dropped after the test. */
async function start(source: string, settings = '', sink = ''): Promise<Running> {
  const dir = await mkdtemp(join(tmpdir(), 'etl-http-pg-'));
  const schema = `etl_test_${randomBytes(5).toString('hex')}`;
  cleanups.push(async () => {
    await serverQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await rm(dir, { recursive: true, force: true });
  });
  return { ...(await startHttpPipeline({ name: 'pushed', dir, schema, source, settings, sink }, cleanups)), schema };
}

function lines(from: number, count: number): string {
  return Array.from(
    { length: count },
    (_, i) =>
      `203.0.113.${(from + i) % 250} - - [10/Oct/2026:13:55:36 +0000] "GET /item/${from + i} HTTP/1.1" 200 ${i}`,
  ).join('\n');
}

function push(url: string, body: string): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'text/plain', 'content-encoding': 'gzip' },
    body: gzipSync(body),
  });
}

async function rowCount(schema: string): Promise<number> {
  const [row] = await serverQuery(`SELECT count(*)::int AS n FROM "${schema}".access_logs`);
  return row?.n as number;
}

/** A session of the test's own holding `LOCK TABLE` in an open transaction: the sink's writes wait for it. */
async function lockTable(schema: string): Promise<{ release(): Promise<void> }> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  await client.query('BEGIN');
  await client.query(`LOCK TABLE "${schema}".access_logs IN ACCESS EXCLUSIVE MODE`);
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await client.query('ROLLBACK');
    await client.end();
  };
  cleanups.push(release);
  return { release };
}

/** Resolves once a session waits for a lock on the table or one of its partitions (the sink's write is blocked). */
async function sinkBlocked(schema: string): Promise<void> {
  for (;;) {
    const rows = await serverQuery(
      `SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT l.granted AND n.nspname = $1 AND c.relname LIKE 'access\\_logs%'`,
      [schema],
    );
    if (rows.length > 0) return;
  }
}

describe('http source into PostgreSQL', () => {
  it('answers 200 only once the rows are committed: they are there when the client reads the answer', async () => {
    const run = await start('');
    for (let i = 0; i < 3; i++) {
      const res = await push(run.url, lines(i * 500, 500));
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ accepted: 500, dead_letters: 0 });
      expect(await rowCount(run.schema)).toBe((i + 1) * 500);
    }
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => push(run.url, lines(10_000 + i * 100, 100))));
    expect(answers.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(await rowCount(run.schema)).toBe(1500 + 800);
    run.stop.abort();
    expect((await run.done).ok).toBe(true);
  });

  it('saturates with 429/503 and Retry-After while the table is locked, then stores exactly what it answered 200', async () => {
    const run = await start(
      ', max_waiting_requests: 2, max_wait_ms: 60000, retry_after_seconds: 2',
      ', max_batches_in_flight: 1, batch_max_records: 1000',
      ', max_uncommitted_bytes: 65536',
    );
    const lock = await lockTable(run.schema);
    // While the table is locked nothing can commit, so any answer before the unlock is a refusal. The pipeline
    // takes a few requests (credit, the sink's bounded buffer, two waiting), then must refuse the rest.
    const arrived: Response[] = [];
    let wake: () => void = () => {};
    const answers = Array.from({ length: 30 }, (_, i) =>
      push(run.url, lines(i * 1000, 1000)).then((res) => {
        arrived.push(res);
        wake();
        return res;
      }),
    );
    while (arrived.length < 3)
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    for (const res of arrived) {
      expect([429, 503]).toContain(res.status);
      expect(res.headers.get('retry-after')).toBe('2');
    }
    await lock.release();
    const all = await Promise.all(answers);
    const accepted = all.filter((r) => r.status === 200).length;
    expect(accepted).toBeGreaterThan(0);
    expect(all.every((r) => [200, 429, 503].includes(r.status))).toBe(true);
    run.stop.abort();
    expect((await run.done).ok).toBe(true);
    expect(await rowCount(run.schema)).toBe(accepted * 1000);
  });

  it('on stop refuses new requests with 503 and answers those in flight once the final checkpoint commits', async () => {
    const run = await start(', retry_after_seconds: 3');
    const lock = await lockTable(run.schema);
    const inFlight = push(run.url, lines(0, 300));
    await sinkBlocked(run.schema);
    run.stop.abort();
    const refused = await push(run.url, lines(300, 10));
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('3');
    await lock.release();
    const answered = await inFlight;
    expect(answered.status).toBe(200);
    expect(await rowCount(run.schema)).toBe(300);
    expect((await run.done).ok).toBe(true);
  });

  it('answers no 2xx and leaves no rows when the run is aborted before the commit', async () => {
    const run = await start('');
    const lock = await lockTable(run.schema);
    const answer = push(run.url, lines(0, 200)).then(
      (res) => res.status,
      () => 'cut off',
    );
    await sinkBlocked(run.schema);
    run.abort.abort();
    // The aborted run unwinds once the sink's blocked write returns; it must not commit then.
    await lock.release();
    const status = await answer;
    expect(status === 'cut off' || status === 500).toBe(true);
    expect((await run.done).ok).toBe(false);
    expect(await rowCount(run.schema)).toBe(0);
  });
});
