/**
 * PGlite runs PostgreSQL inside one process with no postmaster to arbitrate: two processes opening the
 * same data directory would corrupt it. A lock file next to the directory keeps it to one. It is the
 * engine's LockFile (written aside and linked into place, so it is never seen empty; a dead holder's lock
 * taken over by exactly one process), with the messages of this sink.
 */
import { hostname } from 'node:os';
import { EtlError } from '../../../engine/errors.ts';
import { LockFile, type LockHolder, readHolder } from '../../../engine/lock.ts';

export class EmbeddedLock {
  readonly path: string;
  private readonly dir: string;
  private readonly file: LockFile;

  /** `dir` is the data directory; `what` names this process in others' messages (`etl test/store`). */
  constructor(dir: string, what: string) {
    this.dir = dir;
    this.path = `${dir}.lock`;
    this.file = new LockFile(this.path, what);
  }

  async acquire(): Promise<void> {
    // A holder that let go between the refusal and the look at its file: try again.
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await this.file.acquire();
        return;
      } catch (error) {
        if (!(error instanceof EtlError) || error.code !== 'ETL_LOCKED') throw error;
        const holder = await readHolder(this.path);
        if (holder !== undefined) throw this.refusal(holder, error);
      }
    }
    throw new EtlError('ETL_LOCKED', `cannot take the lock ${this.path} of the embedded database ${this.dir}`);
  }

  /** Idempotent. */
  release(): Promise<void> {
    return this.file.release();
  }

  private refusal(holder: LockHolder, cause: EtlError): EtlError {
    const local = holder.host === hostname();
    if (local && holder.pid === process.pid) {
      return new EtlError(
        'ETL_LOCKED',
        `the embedded database ${this.dir} is already locked by this process (its sinks share one opening of it: ` +
          'a second lock means the database was opened outside it)',
        { cause },
      );
    }
    const where = local ? `pid ${holder.pid}` : `pid ${holder.pid} on host ${holder.host}`;
    const who = [holder.what, holder.since && `since ${holder.since}`].filter(Boolean).join(', ');
    return new EtlError(
      'ETL_LOCKED',
      `the embedded database ${this.dir} is in use by another etl process (${where}${who ? `: ${who}` : ''}); ` +
        'the embedded PostgreSQL admits one process at a time: wait for it to finish, or use a PostgreSQL server ' +
        `(\`url:\` or DATABASE_URL)${local ? '' : `; if that host is gone, remove ${this.path}`}`,
      { cause },
    );
  }
}
