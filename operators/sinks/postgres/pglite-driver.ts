/** The embedded PostgreSQL (PGlite): one session per process, guarded by a pid lock. */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PGlite, type Results } from '@electric-sql/pglite';
import type { CopyHandle, Database, QueryResult, Session } from './driver.ts';
import { EmbeddedLock } from './lock.ts';

export async function openEmbedded(dir: string): Promise<Database> {
  const lock = new EmbeddedLock(`${dir}.lock`);
  await mkdir(dirname(dir), { recursive: true });
  await lock.acquire(dir);
  try {
    const db = await PGlite.create(dir);
    await db.exec("SET TIME ZONE 'UTC'");
    return new EmbeddedDatabase(dir, db, lock);
  } catch (error) {
    await lock.release();
    throw error;
  }
}

class EmbeddedDatabase implements Database {
  readonly kind = 'embedded' as const;
  readonly label: string;
  private readonly db: PGlite;
  private readonly lock: EmbeddedLock;
  private closing: Promise<void> | undefined;

  constructor(dir: string, db: PGlite, lock: EmbeddedLock) {
    this.label = `embedded ${dir}`;
    this.db = db;
    this.lock = lock;
  }

  async session(): Promise<Session> {
    if (this.closing) throw new Error(`database ${this.label} is closed`);
    return new EmbeddedSession(this.db);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.db.close();
      } finally {
        await this.lock.release();
      }
    })();
    return this.closing;
  }
}

/** Every session is the one PGlite backend: callers that need a transaction of their own hold one session. */
class EmbeddedSession implements Session {
  readonly broken = false;
  private readonly db: PGlite;

  constructor(db: PGlite) {
    this.db = db;
  }

  async query(sql: string, params?: readonly unknown[]): Promise<QueryResult> {
    return toResult(await this.db.query(sql, params as unknown[] | undefined));
  }

  async script(sql: string): Promise<QueryResult[]> {
    return (await this.db.exec(sql)).map(toResult);
  }

  async copyFrom(target: string, chunks: readonly Uint8Array[]): Promise<number> {
    const result = await this.db.query(`COPY ${target} FROM '/dev/blob'`, [], {
      blob: new Blob(chunks as Uint8Array<ArrayBuffer>[]),
    });
    return result.affectedRows ?? 0;
  }

  copyStart(target: string, chunks: readonly Uint8Array[]): CopyHandle {
    // In-process: there is no wire to overlap with, the work happens as the query runs.
    const done = this.copyFrom(target, chunks);
    return { sent: done.then(noop, noop), done };
  }

  release(): void {}
}

function noop(): void {}

function toResult(result: Results): QueryResult {
  const out: QueryResult = {
    rows: result.rows as Record<string, unknown>[],
    fields: result.fields.map((f) => f.name),
    fieldTypes: result.fields.map((f) => f.dataTypeID),
  };
  return result.affectedRows === undefined ? out : { ...out, rowCount: result.affectedRows };
}
