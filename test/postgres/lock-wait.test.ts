/**
 * A table held under an ACCESS EXCLUSIVE lock by another session: the sink's load waits, and says what it
 * waits for (the blocking session as the server shows it, the relation) after a while and again while it
 * goes on, then loads once the lock is released.
 */
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Logger, Sink } from '../../engine/operator.ts';
import { createPostgresSink } from '../../operators/sinks/postgres/postgres.ts';
import { accessRecord, DeadLetters, PG_URL, serverQuery, Target, testContext } from './helpers.ts';

const NOW = Date.parse('2024-05-01T12:00:00Z');

/** Warnings as they are logged, and a wait for the n-th one that matches. */
class Warnings {
  readonly seen: Array<{ message: string; fields: Record<string, unknown> | undefined }> = [];
  private readonly waiters: Array<{ match: RegExp; n: number; wake: () => void }> = [];

  logger(): Logger {
    const quiet = () => {};
    return {
      debug: quiet,
      info: quiet,
      error: quiet,
      warn: (message, fields) => {
        this.seen.push({ message, fields });
        for (const w of [...this.waiters]) {
          if (this.count(w.match) >= w.n) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.wake();
          }
        }
      },
    };
  }

  count(match: RegExp): number {
    return this.seen.filter((w) => match.test(w.message)).length;
  }

  reach(match: RegExp, n: number): Promise<void> {
    if (this.count(match) >= n) return Promise.resolve();
    return new Promise((wake) => this.waiters.push({ match, n, wake }));
  }
}

describe('a load waiting for a lock another session holds (server)', () => {
  let target: Target;
  let sink: Sink | undefined;
  let other: pg.Client | undefined;
  beforeEach(async () => {
    target = await Target.create('server');
  });
  afterEach(async () => {
    await other?.end().catch(() => {});
    await sink?.close?.();
    await target.dispose();
  });

  it('says what it waits for after a while, says it again while it lasts, and loads once released', async () => {
    const warnings = new Warnings();
    sink = createPostgresSink(
      target.options(),
      { ...testContext(target.dataDir), logger: warnings.logger() },
      { env: {}, now: () => NOW, lockWaitNoticeMs: 50, lockWaitRepeatMs: 100 },
    );
    await sink.open?.();
    other = new pg.Client({ connectionString: PG_URL, application_name: 'maintenance window' });
    await other.connect();
    const otherPid = (await other.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    await other.query('BEGIN');
    await other.query(`LOCK TABLE "${target.schema}".access_logs IN ACCESS EXCLUSIVE MODE`);

    const loading = (async () => {
      await sink.write(
        Array.from({ length: 100 }, (_, i) => accessRecord(i, '2024-05-01T11:00:00Z')),
        new DeadLetters(),
      );
      await sink.commit?.({ id: 1, positions: {} });
    })();
    const waiting = /^waiting \d+ s for a lock/;
    await warnings.reach(waiting, 2);
    const [first] = warnings.seen.filter((w) => waiting.test(w.message));
    expect(first?.message).toMatch(
      new RegExp(
        `^waiting \\d+ s for a lock \\(\\w+Lock on ${target.schema}\\.access_logs\\w*\\) held by pid ${otherPid} ` +
          '\\(application_name "maintenance window", state "idle in transaction", query started .+: ' +
          `"LOCK TABLE \\\\"${target.schema}\\\\"\\.access_logs IN ACCESS EXCLUSIVE MODE"\\); ` +
          'loading goes on once it is released',
      ),
    );
    expect(first?.fields).toMatchObject({ blocking_pids: [otherPid] });

    await other.query('COMMIT');
    await loading;
    const said = warnings.count(waiting);
    const [row] = await serverQuery(`SELECT count(*)::int AS n FROM "${target.schema}".access_logs`);
    expect(row).toEqual({ n: 100 });
    // Nothing waits any more: a next load says nothing.
    await sink.write([accessRecord(100, '2024-05-01T11:00:00Z')], new DeadLetters());
    await sink.commit?.({ id: 2, positions: {} });
    expect(warnings.count(waiting)).toBe(said);
  });
});
