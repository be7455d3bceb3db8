/** The embedded PostgreSQL (PGlite): one session per process, guarded by a pid lock. */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PGlite, type Results } from '@electric-sql/pglite';
import type { CopyWriter, Database, QueryResult, Session } from './driver.ts';
import { EmbeddedLock } from './lock.ts';

export async function openEmbedded(dir: string): Promise<Database> {
  const lock = new EmbeddedLock(`${dir}.lock`);
  await mkdir(dirname(dir), { recursive: true });
  await lock.acquire(dir);
  try {
    // PGlite starts PostgreSQL with fsync off (`-F`): a machine crash could then corrupt the database.
    // The checkpoint state is fsynced; the rows it counts must be too.
    const db = await PGlite.create(dir, { startParams: PGlite.defaultStartParams.filter((p) => p !== '-F') });
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

  copyIn(target: string): CopyWriter {
    return new EmbeddedCopy(this.db, target);
  }

  release(): void {}
}

/** Rows kept before they go to PGlite in one COPY (it reads a blob, not a stream). */
const EMBEDDED_COPY_BYTES = 8 * 1024 * 1024;

/** In-process there is no wire to overlap with: rows are gathered and copied from a blob in slices. */
class EmbeddedCopy implements CopyWriter {
  private readonly db: PGlite;
  private readonly target: string;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private rows = 0;
  private failure: unknown;
  private ending: Promise<number> | undefined;

  constructor(db: PGlite, target: string) {
    this.db = db;
    this.target = target;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (this.ending) throw new Error('COPY already ended');
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= EMBEDDED_COPY_BYTES) await this.copyPending();
  }

  end(): Promise<number> {
    this.ending ??= (async () => {
      if (this.failure !== undefined) throw this.failure;
      await this.copyPending();
      return this.rows;
    })();
    return this.ending;
  }

  private async copyPending(): Promise<void> {
    const chunks = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    if (chunks.length === 0) return;
    try {
      const result = await this.db.query(`COPY ${this.target} FROM '/dev/blob'`, [], {
        blob: new Blob(chunks as Uint8Array<ArrayBuffer>[]),
      });
      this.rows += result.affectedRows ?? 0;
    } catch (error) {
      this.failure = error;
      throw error;
    }
  }
}

function toResult(result: Results): QueryResult {
  const out: QueryResult = {
    rows: result.rows as Record<string, unknown>[],
    fields: result.fields.map((f) => f.name),
    fieldTypes: result.fields.map((f) => f.dataTypeID),
  };
  return result.affectedRows === undefined ? out : { ...out, rowCount: result.affectedRows };
}
