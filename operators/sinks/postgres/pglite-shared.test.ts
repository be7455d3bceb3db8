/**
 * Two users of one embedded database in one process (two postgres sinks): a session inside a transaction holds
 * the one backend, the other's statements wait for its COMMIT instead of running inside it, and a session given up
 * inside its transaction is rolled back rather than leaving the other waiting.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from './driver.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-pglite-shared-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const open = () =>
  openDatabase(
    { kind: 'embedded', dir: join(dir, 'pgdata') },
    { poolMaxConnections: 1, connectTimeoutMs: 5000, applicationName: 'test' },
  );

describe('an embedded database shared in one process', () => {
  it('runs one user’s statements outside the other’s transaction, and rolls back a session given up in one', async () => {
    const a = await open();
    const b = await open();
    try {
      expect(a.shared).toBe(true);
      const sa = await a.session();
      const sb = await b.session();
      await sa.query('CREATE TABLE t (n int)');
      await sa.query('BEGIN');
      await sa.query('INSERT INTO t VALUES (1)');
      // b's statement waits for a's transaction: it must not see (or join) the uncommitted row.
      const seen = sb.query('SELECT count(*)::int AS n FROM t');
      let settled = false;
      void seen.then(() => {
        settled = true;
      });
      await sa.query('INSERT INTO t VALUES (2)');
      expect(settled).toBe(false);
      await sa.query('COMMIT');
      expect((await seen).rows).toEqual([{ n: 2 }]);
      // a gives its session up inside a transaction: its row goes, and b is not left waiting.
      await sa.query('BEGIN');
      await sa.query('INSERT INTO t VALUES (3)');
      sa.release(true);
      expect((await sb.query('SELECT count(*)::int AS n FROM t')).rows).toEqual([{ n: 2 }]);
      sb.release();
    } finally {
      await a.close();
      expect(b.shared).toBe(false);
      await b.close();
    }
  });
});
