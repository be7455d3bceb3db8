/**
 * A lock file held by one process at a time, naming its holder (pid, host, since when, what for).
 *
 * Written here rather than taken from a lock library: those judge a lock stale by its age (its holder
 * refreshes it on a timer), so every restart after a crash would wait out that age, or steal a live lock
 * from a process whose event loop was busy. A holder on this host is known dead or alive at once from its
 * pid; a lock from another host (a data directory on shared storage) is refused with the holder named.
 *
 * The file appears whole or not at all (written aside, then hard-linked into place, which fails if it
 * exists), so no reader ever sees an empty lock. Taking over a dead holder's lock goes through a second,
 * short-lived lock, so two processes finding the same dead holder cannot both take over.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { EtlError } from './errors.ts';

export interface LockHolder {
  readonly pid: number;
  readonly host: string;
  /** ISO time the lock was taken. */
  readonly since: string;
  /** What holds it, for the message (`etl apply quickstart`). */
  readonly what: string;
}

export interface AcquireOptions {
  /** Wait for the holder to let go instead of refusing. */
  readonly wait?: boolean;
  /** Called once when waiting starts, and every `waitNoticeMs` while it goes on. */
  readonly onWait?: (holder: LockHolder) => void;
  readonly signal?: AbortSignal;
}

const POLL_MS = 200;
const WAIT_NOTICE_MS = 10_000;
/** A takeover lock older than this was left by a process that died in the middle of a takeover. */
const TAKEOVER_ABANDONED_MS = 10_000;

export class LockFile {
  readonly path: string;
  private readonly what: string;
  private readonly remedy: string;
  private held = false;

  /** `what` names this holder in others' messages; `remedy` ends the message of a refused `acquire`. */
  constructor(path: string, what: string, remedy = 'wait for it to finish, or stop it') {
    this.path = path;
    this.what = what;
    this.remedy = remedy;
  }

  /** Takes the lock, or throws `ETL_LOCKED` naming the holder (after waiting, with `wait`). */
  async acquire(options: AcquireOptions = {}): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    const mine: LockHolder = { pid: process.pid, host: hostname(), since: new Date().toISOString(), what: this.what };
    let noticedAt: number | undefined;
    for (;;) {
      if (await this.tryCreate(mine)) {
        this.held = true;
        return;
      }
      const holder = await readHolder(this.path);
      if (holder === undefined || (holder.host === mine.host && !isAlive(holder.pid))) {
        await this.takeOver(holder);
        continue;
      }
      if (holder.host === mine.host && holder.pid === process.pid) {
        throw new EtlError('ETL_LOCKED', `${this.path} is already held by this process (${holder.what})`);
      }
      if (!options.wait || options.signal?.aborted) throw lockedError(this.path, holder, this.remedy);
      if (noticedAt === undefined || Date.now() - noticedAt >= WAIT_NOTICE_MS) {
        noticedAt = Date.now();
        options.onWait?.(holder);
      }
      await sleep(POLL_MS, options.signal);
    }
  }

  /** Idempotent; a lock this process does not hold is left alone. */
  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    const holder = await readHolder(this.path);
    if (holder?.pid === process.pid && holder.host === hostname()) await unlink(this.path).catch(() => {});
  }

  private async tryCreate(holder: LockHolder): Promise<boolean> {
    const aside = `${this.path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(aside, `${JSON.stringify(holder)}\n`);
    try {
      await link(aside, this.path);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    } finally {
      await unlink(aside).catch(() => {});
    }
  }

  private takeOver(dead: LockHolder | undefined): Promise<void> {
    return removeDeadLock(this.path, dead);
  }
}

/**
 * Removes the lock at `path` if it still names `dead`: a process that found the same dead holder may have
 * taken over since, and its fresh lock must stay. The check and the removal run under a second lock (a
 * directory, created atomically), so that no other process's takeover can slip in between them.
 */
export async function removeDeadLock(path: string, dead: LockHolder | undefined): Promise<void> {
  const guard = `${path}.takeover`;
  try {
    await mkdir(guard);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const age = Date.now() - (await stat(guard).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
    if (age > TAKEOVER_ABANDONED_MS) await rmdir(guard).catch(() => {});
    await sleep(10);
    return;
  }
  try {
    // No file: another takeover removed it, and the lock its process may be linking right now must stay.
    const text = await readLock(path);
    if (text === undefined) return;
    const now = parseHolder(text);
    const same = now === undefined ? dead === undefined : dead !== undefined && sameHolder(now, dead);
    if (same) await unlink(path).catch(() => {});
  } finally {
    await rmdir(guard).catch(() => {});
  }
}

/** The holder named in a lock file; undefined when there is no file or it names none (an older format). */
export async function readHolder(path: string): Promise<LockHolder | undefined> {
  const text = await readLock(path);
  return text === undefined ? undefined : parseHolder(text);
}

/** The lock file's text; undefined when there is none. */
async function readLock(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function parseHolder(text: string): LockHolder | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed === 'object' && parsed !== null) {
    const holder = parsed as Partial<LockHolder>;
    if (typeof holder.pid === 'number' && typeof holder.host === 'string') {
      return { pid: holder.pid, host: holder.host, since: String(holder.since ?? ''), what: String(holder.what ?? '') };
    }
    return undefined;
  }
  // A bare pid, as older versions wrote (JSON reads it as a number).
  const pid = Number.parseInt(text, 10);
  return Number.isInteger(pid) && pid > 0 ? { pid, host: hostname(), since: '', what: 'etl' } : undefined;
}

function lockedError(path: string, holder: LockHolder, remedy: string): EtlError {
  const local = holder.host === hostname();
  const where = local ? `pid ${holder.pid}` : `pid ${holder.pid} on host ${holder.host}`;
  const since = holder.since ? `, since ${holder.since}` : '';
  const gone = local ? '' : `; if that host is gone, remove ${path}`;
  return new EtlError(
    'ETL_LOCKED',
    `${holder.what || 'another etl process'} (${where}${since}) holds ${path}: ${remedy}${gone}`,
  );
}

function sameHolder(a: LockHolder, b: LockHolder): boolean {
  return a.pid === b.pid && a.host === b.host && a.since === b.since;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
