/**
 * One run at a time per (schema, pipeline, sink) on a PostgreSQL server. The pipeline's state directory is
 * locked per machine, but two machines sharing a server each have their own: the sink holds a
 * session-level advisory lock on its loading session, taken when that session connects (at open, and again
 * after every reconnect: a lost session's locks go with it). A second run is refused at once with the
 * holder as the server knows it (pg_locks, pg_stat_activity); a reconnect that finds another run holding it
 * fails the run rather than loading alongside. A holder that is a lost session of this sink, or the session
 * of a killed etl process of this host, which the server has not seen go yet, is ended and the lock taken.
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { EtlError } from '../../../engine/errors.ts';
import type { Session } from './driver.ts';

/** The lock's 64-bit key: the first 8 bytes of SHA-256 of `etl:<schema>:<pipeline>:<sink>`. */
export function advisoryKey(schema: string, pipeline: string, sink: string): bigint {
  return createHash('sha256').update(`etl:${schema}:${pipeline}:${sink}`).digest().readBigInt64BE(0);
}

export interface SinkLockConfig {
  readonly schema: string;
  readonly pipeline: string;
  readonly sink: string;
  /** The database, for messages (password masked). */
  readonly label: string;
  /** `ctx.waitForLocks`: wait at the first connection for another run to let go, until this aborts. */
  readonly wait?: AbortSignal;
  /** Told when waiting starts, and every `WAIT_NOTICE_MS` while it goes on. */
  readonly onWait?: (holder: string) => void;
  /** How often a wait looks again. */
  readonly pollMs?: number;
}

/** A session holding the lock, as far as the server shows it (columns of other roles may be hidden). */
interface Holder {
  readonly pid: number;
  readonly application_name: string | null;
  readonly client_addr: string | null;
  readonly backend_start: string | null;
}

/** How often a refusal looks again when the holder is gone by the time it is looked up, or was a session of ours. */
const ATTEMPTS = 3;
/** How long to wait for a session of ours, lost but not yet ended on the server, to end once told to. */
const TERMINATE_WAIT_MS = 5000;
const WAIT_POLL_MS = 500;
const WAIT_NOTICE_MS = 10_000;

export class SinkLock {
  private readonly cfg: SinkLockConfig;
  private readonly key: string;
  private readonly holderQuery: string;
  private readonly holderParams: readonly string[];
  /** Backends that held the lock for this sink: one of them still holding it is a lost session of ours. */
  private readonly mine = new Set<number>();

  constructor(cfg: SinkLockConfig) {
    this.cfg = cfg;
    const key = advisoryKey(cfg.schema, cfg.pipeline, cfg.sink);
    this.key = key.toString();
    // pg_locks shows a bigint key as its high and low 32 bits (classid, objid), objsubid 1.
    this.holderParams = [((key >> 32n) & 0xffffffffn).toString(), (key & 0xffffffffn).toString()];
    this.holderQuery =
      'SELECT l.pid, a.application_name, host(a.client_addr) AS client_addr, a.backend_start::text AS backend_start ' +
      'FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid ' +
      "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.classid::bigint = $1 AND l.objid::bigint = $2 " +
      'AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())';
  }

  /** Takes the lock on a session just connected; throws `ETL_LOCKED` naming the holder when another run has it. */
  async take(session: Session): Promise<void> {
    const reconnect = this.mine.size > 0;
    let noticedAt: number | undefined;
    for (let attempt = 1; ; attempt++) {
      const { rows } = await session.query(
        'SELECT pg_try_advisory_lock($1::bigint) AS locked, pg_backend_pid() AS pid',
        [this.key],
      );
      const row = rows[0] as { locked: boolean; pid: number };
      if (row.locked) {
        this.mine.add(row.pid);
        return;
      }
      const holder = (await session.query(this.holderQuery, this.holderParams)).rows[0] as Holder | undefined;
      if (attempt < ATTEMPTS && holder === undefined) continue; // it let go in between
      if (attempt < ATTEMPTS && holder !== undefined && (this.mine.has(holder.pid) || orphaned(holder))) {
        // A session of ours whose connection was lost, or of an etl process of this host that is gone (killed),
        // which the server has not seen go yet: end it (its transaction settles first, committed or not).
        await session.query('SELECT pg_terminate_backend($1, $2)', [holder.pid, TERMINATE_WAIT_MS]).catch(() => {});
        continue;
      }
      const wait = this.cfg.wait;
      // A reconnect never waits: another run loading meanwhile means this one's uncommitted rows must go.
      if (reconnect || wait === undefined || wait.aborted) throw this.refusal(holder, reconnect);
      if (noticedAt === undefined || Date.now() - noticedAt >= WAIT_NOTICE_MS) {
        noticedAt = Date.now();
        this.cfg.onWait?.(holder === undefined ? 'a session that has ended since' : describe(holder));
      }
      attempt = 0;
      await pause(this.cfg.pollMs ?? WAIT_POLL_MS, wait);
    }
  }

  /** Lets go of the lock (at close; a session that is closed lets go of it anyway). */
  async release(session: Session): Promise<void> {
    await session.query('SELECT pg_advisory_unlock($1::bigint)', [this.key]);
  }

  private refusal(holder: Holder | undefined, reconnect: boolean): EtlError {
    const { pipeline, sink, schema, label } = this.cfg;
    const who = holder === undefined ? 'a session that has ended since' : describe(holder);
    const head = `another run of pipeline ${pipeline} holds the lock of postgres sink ${sink} on PostgreSQL (${label}, schema ${schema}): ${who}`;
    if (reconnect) {
      return new EtlError(
        'ETL_LOCKED',
        `after reconnecting, ${head}; this run stops so that the two do not load the same rows (its rows since ` +
          'the last checkpoint were not committed and load again from there on the next run)',
      );
    }
    return new EtlError(
      'ETL_LOCKED',
      `${head}; two runs loading one table at once would duplicate rows: wait for it to finish, or stop it`,
    );
  }
}

/** `etl <pipeline>/<sink> pid <pid>@<host>`: the process a sink's connection belongs to (postgres.ts names them). */
const ETL_APPLICATION = /^etl .* pid (\d+)@(.+)$/;

/** The holder is the connection of an etl process of this host that no longer runs. */
function orphaned(holder: Holder): boolean {
  const match = ETL_APPLICATION.exec(holder.application_name ?? '');
  if (!match || match[2] !== hostname()) return false;
  const pid = Number(match[1]);
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

function describe(holder: Holder): string {
  const parts = [`pid ${holder.pid}`];
  if (holder.application_name) parts.push(`application_name ${JSON.stringify(holder.application_name)}`);
  if (holder.client_addr) parts.push(`client ${holder.client_addr}`);
  if (holder.backend_start) parts.push(`connected since ${holder.backend_start}`);
  return parts.join(', ');
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
