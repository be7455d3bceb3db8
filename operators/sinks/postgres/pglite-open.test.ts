import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { openPglite } from './pglite-open.ts';

describe('embedded PostgreSQL as opened', () => {
  let work: string;
  beforeEach(async () => {
    work = await mkdtemp(join(tmpdir(), 'etl-pglite-'));
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    syncBuiltinESMExports();
    await rm(work, { recursive: true, force: true });
  });

  it("syncs a commit to the disk (PGlite's file system ignored PostgreSQL's syncs)", async () => {
    const { db, made } = await openPglite(join(work, 'pgdata'));
    try {
      expect(made).toBe('template');
      expect((await db.query('SHOW fsync')).rows).toEqual([{ fsync: 'on' }]);
      expect((await db.query('SHOW wal_sync_method')).rows).toEqual([{ wal_sync_method: 'fsync' }]);
      expect((await db.query('SHOW wal_init_zero')).rows).toEqual([{ wal_init_zero: 'off' }]);
      await db.exec('CREATE TABLE t (a int)');
      const fsync = vi.spyOn(fs, 'fsyncSync');
      syncBuiltinESMExports();
      await db.exec('INSERT INTO t VALUES (1)');
      expect(fsync).toHaveBeenCalled();
    } finally {
      await db.close();
    }
  });
});
