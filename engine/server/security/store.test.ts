/** The key and audit store on the embedded PostgreSQL (the default) and on a server: same behaviour. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scratchDatabase } from '../../../test/support/security-api.ts';
import { openDatabase } from '../../database.ts';
import { type AuditEntry, SecurityStore, storeTarget } from './store.ts';

let dir: string;
let db: { url: string; drop(): Promise<void> };

beforeAll(async () => {
  [dir, db] = await Promise.all([mkdtemp(join(tmpdir(), 'etl-store-')), scratchDatabase()]);
});

afterAll(async () => {
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function entry(i: number): AuditEntry {
  return {
    keyId: i % 2 === 0 ? 'aaaaaaaaaaaaaaaa' : null,
    keyName: null,
    role: null,
    method: i % 3 === 0 ? 'DELETE' : 'POST',
    path: `/pipelines/p${i}`,
    route: '/pipelines/:name',
    ip: '127.0.0.1',
    status: i % 2 === 0 ? 200 : 401,
    outcome: i % 2 === 0 ? 'ok' : 'unauthenticated',
    reason: null,
    requestId: `req-${i}`,
  };
}

describe.each([
  ['embedded', () => ({ dataDir: join(dir, 'data') })],
  ['server', () => ({ dataDir: dir, postgresUrl: db.url })],
])('%s', (_kind, location) => {
  it('pages the audit log newest first, filters it, and refuses to change it', async () => {
    const store = await SecurityStore.open(location());
    try {
      for (let i = 1; i <= 12; i++) await store.appendAudit(entry(i));
      const first = await store.queryAudit({ limit: 5 });
      expect(first.map((e) => e.path)).toEqual([
        '/pipelines/p12',
        '/pipelines/p11',
        '/pipelines/p10',
        '/pipelines/p9',
        '/pipelines/p8',
      ]);
      const next = await store.queryAudit({ limit: 5, beforeSeq: first.at(-1)?.seq });
      expect(next.map((e) => e.path)).toEqual([
        '/pipelines/p7',
        '/pipelines/p6',
        '/pipelines/p5',
        '/pipelines/p4',
        '/pipelines/p3',
      ]);
      const deletes = await store.queryAudit({ limit: 100, method: 'delete', outcome: 'ok' });
      expect(deletes.map((e) => e.path)).toEqual(['/pipelines/p12', '/pipelines/p6']);
      expect(await store.queryAudit({ limit: 100, since: '2999-01-01T00:00:00Z' })).toEqual([]);
      expect(first[0]?.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    } finally {
      await store.close();
    }
    // Straight to the database, bypassing the store: the triggers refuse.
    const database = await openDatabase(storeTarget(location()), {
      poolMaxConnections: 1,
      connectTimeoutMs: 10_000,
      applicationName: 'test',
    });
    try {
      const session = await database.session();
      for (const sql of [
        'UPDATE etl_security.audit SET status = 0',
        'DELETE FROM etl_security.audit',
        'TRUNCATE etl_security.audit',
      ]) {
        await expect(session.query(sql), sql).rejects.toThrow(/append-only/);
      }
      session.release();
    } finally {
      await database.close();
    }
  });
});

it('lets several daemons create the tables at once', async () => {
  const fresh = await scratchDatabase();
  try {
    const stores = await Promise.all([1, 2, 3].map(() => SecurityStore.open({ dataDir: dir, postgresUrl: fresh.url })));
    const made = await stores[0]?.createKey('k', 'viewer');
    expect((await stores[2]?.findKey(made?.id as string))?.name).toBe('k');
    await Promise.all(stores.map((s) => s.close()));
    const client = new pg.Client({ connectionString: fresh.url });
    await client.connect();
    const { rows } = await client.query("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'etl_security'");
    await client.end();
    expect(rows[0].n).toBe(2);
  } finally {
    await fresh.drop();
  }
});
