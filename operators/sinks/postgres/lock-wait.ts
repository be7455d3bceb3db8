/**
 * Says what a load waits for when it waits on a lock another session holds (a table locked for maintenance,
 * `LOCK TABLE … IN ACCESS EXCLUSIVE MODE`, a long transaction's DDL): without it the pipeline stalls behind
 * the sink with nothing logged. While a call of the loader runs longer than `noticeAfterMs`, the loading
 * session's backend is looked up (on a connection of its own from the pool) in pg_locks; while it waits on a
 * lock, a warning names the relation and the blocking sessions (pg_blocking_pids, pg_stat_activity), once
 * and then every `repeatMs`. It stops when the call ends.
 */
import { errorMessage } from '../../../engine/errors.ts';
import type { Logger } from '../../../engine/operator.ts';
import type { Database } from './driver.ts';

export interface LockWaitTiming {
  /** A call running this long is checked for a lock wait (and again as long as it runs). */
  readonly noticeAfterMs: number;
  /** A wait that goes on is reported again this often. */
  readonly repeatMs: number;
}

export const LOCK_WAIT_TIMING: LockWaitTiming = { noticeAfterMs: 5000, repeatMs: 30_000 };

interface Blocked {
  readonly locktype: string;
  readonly mode: string;
  readonly relation: string | null;
  readonly waited_s: number | null;
  readonly pid: number | null;
  readonly application_name: string | null;
  readonly state: string | null;
  readonly query_start: string | null;
  readonly query: string | null;
}

/** The lock `$1` waits for, if any, with each session blocking it (one row per blocker, or one without). */
const BLOCKED_QUERY = `
WITH waiting AS (
  SELECT locktype, mode, relation::regclass::text AS relation, waitstart
    FROM pg_locks WHERE pid = $1 AND NOT granted LIMIT 1
)
SELECT w.locktype, w.mode, w.relation, floor(extract(epoch FROM now() - w.waitstart))::int AS waited_s,
       b.pid, b.application_name, b.state, b.query_start::text AS query_start, left(b.query, 200) AS query
  FROM waiting w
  LEFT JOIN LATERAL unnest(pg_blocking_pids($1)) AS blocker(pid) ON true
  LEFT JOIN pg_stat_activity b ON b.pid = blocker.pid`;

export class LockWaitWatch {
  private readonly database: Database;
  private readonly logger: Logger;
  private readonly timing: LockWaitTiming;
  /** The backend of the loading session, when it has one. */
  private readonly backend: () => number | undefined;
  /** Counts calls: a check that belongs to a call that has ended says nothing. */
  private call = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(database: Database, logger: Logger, timing: LockWaitTiming, backend: () => number | undefined) {
    this.database = database;
    this.logger = logger;
    this.timing = timing;
    this.backend = backend;
  }

  /** A call of the loader starts: checked once it has run `noticeAfterMs`. */
  begin(): void {
    this.end();
    this.schedule(++this.call, this.timing.noticeAfterMs);
  }

  /** The call ended (also at close). */
  end(): void {
    this.call++;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(call: number, ms: number): void {
    this.timer = setTimeout(() => void this.check(call), ms);
    // A watch never keeps the process alive.
    this.timer.unref();
  }

  private async check(call: number): Promise<void> {
    const pid = this.backend();
    let blocked: Blocked[] = [];
    if (pid !== undefined) {
      try {
        const session = await this.database.session();
        try {
          blocked = (await session.query(BLOCKED_QUERY, [pid])).rows as unknown as Blocked[];
        } finally {
          session.release();
        }
      } catch (error) {
        // The server is unreachable or the pool is full: the loader's own error handling has it.
        this.logger.debug('cannot look up what the load waits for', { error: errorMessage(error) });
      }
    }
    if (call !== this.call) return;
    if (blocked.length > 0) this.warn(blocked);
    this.schedule(call, blocked.length > 0 ? this.timing.repeatMs : this.timing.noticeAfterMs);
  }

  private warn(blocked: Blocked[]): void {
    const first = blocked[0] as Blocked;
    const what = first.relation ? `${first.mode} on ${first.relation}` : `${first.mode} on a ${first.locktype}`;
    const holders = blocked.filter((b) => b.pid !== null);
    const by =
      holders.length === 0
        ? 'held by a session the server does not name'
        : `held by ${holders.map(describe).join(', ')}`;
    this.logger.warn(
      `waiting ${first.waited_s ?? 0} s for a lock (${what}) ${by}; loading goes on once it is released`,
      {
        relation: first.relation,
        mode: first.mode,
        blocking_pids: holders.map((b) => b.pid),
      },
    );
  }
}

function describe(b: Blocked): string {
  const about = [
    b.application_name ? `application_name ${JSON.stringify(b.application_name)}` : undefined,
    b.state ? `state ${JSON.stringify(b.state)}` : undefined,
    b.query_start ? `query started ${b.query_start}${b.query ? `: ${JSON.stringify(b.query)}` : ''}` : undefined,
  ].filter(Boolean);
  return `pid ${b.pid}${about.length > 0 ? ` (${about.join(', ')})` : ''}`;
}
