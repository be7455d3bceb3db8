/**
 * The http source with `buffer` in a real pipeline (http → parse → postgres server, loaded from YAML): while a
 * session of the test holds the table locked, so that no row can be committed, requests are still answered 200
 * (they are in the write-ahead log); once the lock goes, exactly the lines answered 200 are stored, and a rerun
 * stores nothing twice (test/postgres/http-buffer.slow.test.ts crashes the real CLI).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { until } from '../support/until.ts';
import { PG_URL, serverQuery } from './helpers.ts';
import { type HttpRun, startHttpPipeline } from './http-pipeline.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Runs http (with a buffer in `dir`) → parse → postgres; resolves once the source listens (the table exists). */
function start(dir: string, schema: string): Promise<HttpRun> {
  return startHttpPipeline(
    { name: 'buffered', dir, schema, source: `, buffer: { path: ${join(dir, 'wal')} }` },
    cleanups,
  );
}

function lines(from: number, count: number): string {
  return Array.from(
    { length: count },
    (_, i) => `203.0.113.${(from + i) % 250} - - [10/Oct/2026:13:55:36 +0000] "GET /item/${from + i} HTTP/1.1" 200 1`,
  ).join('\n');
}

function push(url: string, body: string): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'text/plain', 'content-encoding': 'gzip' },
    body: gzipSync(body),
  });
}

async function stored(schema: string): Promise<{ n: number; d: number }> {
  const [row] = await serverQuery(
    `SELECT count(*)::int AS n, count(DISTINCT path)::int AS d FROM "${schema}".access_logs`,
  );
  return { n: row?.n as number, d: row?.d as number };
}

/** A session of the test's own holding `LOCK TABLE` in an open transaction: the sink's writes wait for it. */
async function lockTable(schema: string): Promise<() => Promise<void>> {
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
  return release;
}

describe('http source with a write-ahead buffer into PostgreSQL', () => {
  it('answers 200 before the rows can be committed, then stores exactly those lines, also across a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'etl-http-buffer-pg-'));
    const schema = `etl_test_${randomBytes(5).toString('hex')}`;
    cleanups.push(async () => {
      await serverQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await rm(dir, { recursive: true, force: true });
    });
    const first = await start(dir, schema);
    const unlock = await lockTable(schema);
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => push(first.url, lines(i * 200, 200))));
    expect(answers.map((r) => r.status)).toEqual(Array(10).fill(200));
    // Every request was answered while no row could be committed (without the buffer, they would wait for the lock).
    await unlock();
    await until(async () => (await stored(schema)).n >= 2000, 'the answered lines in the table');
    expect(await stored(schema)).toEqual({ n: 2000, d: 2000 });
    first.stop.abort();
    expect((await first.done).ok).toBe(true);

    // A rerun resumes after what was committed: it stores nothing twice, and takes new requests.
    const second = await start(dir, schema);
    const more = await Promise.all(Array.from({ length: 5 }, (_, i) => push(second.url, lines(10_000 + i * 100, 100))));
    expect(more.map((r) => r.status)).toEqual(Array(5).fill(200));
    await until(async () => (await stored(schema)).n >= 2500, 'the new lines in the table');
    second.stop.abort();
    expect((await second.done).ok).toBe(true);
    expect(await stored(schema)).toEqual({ n: 2500, d: 2500 });
  });
});
