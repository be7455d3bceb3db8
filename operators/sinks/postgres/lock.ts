/**
 * PGlite runs PostgreSQL inside one process with no postmaster to arbitrate: two processes opening the
 * same data directory would corrupt it. A pid file next to the directory keeps it to one; a lock whose
 * process is gone (SIGKILL) is stale and taken over.
 */
import { open, readFile, unlink } from 'node:fs/promises';
import { EtlError } from '../../../engine/errors.ts';

export class EmbeddedLock {
  readonly path: string;
  private held = false;

  constructor(path: string) {
    this.path = path;
  }

  async acquire(what: string): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const handle = await open(this.path, 'wx');
        try {
          await handle.writeFile(String(process.pid));
        } finally {
          await handle.close();
        }
        this.held = true;
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const owner = await readOwner(this.path);
      if (owner !== undefined && owner !== process.pid && isAlive(owner)) {
        throw new EtlError(
          'ETL_RUN_SINK_FAILED',
          `the embedded database ${what} is in use by another etl process (pid ${owner}, e.g. a running ` +
            '`etl apply`); the embedded PostgreSQL admits one process at a time: wait for it to finish, or use a ' +
            'PostgreSQL server (`url:` or DATABASE_URL)',
        );
      }
      if (owner === process.pid) {
        throw new EtlError(
          'ETL_RUN_SINK_FAILED',
          `the embedded database ${what} is already open in this process: two postgres sinks cannot share one ` +
            'embedded database; give one of them a `url:` or its pipeline another data_dir',
        );
      }
      await unlink(this.path).catch(() => {});
    }
    throw new EtlError('ETL_RUN_SINK_FAILED', `cannot take the lock ${this.path} of the embedded database ${what}`);
  }

  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    await unlink(this.path).catch(() => {});
  }
}

async function readOwner(path: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt(await readFile(path, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
