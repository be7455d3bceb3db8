/** Connection losses, lost COMMIT answers, rows PostgreSQL refuses (server and embedded), and the outage limit. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Sink } from '../../engine/operator.ts';
import { type EtlRecord, ORIGIN } from '../../engine/record.ts';
import {
  type ConnectOptions,
  type Database,
  type DatabaseTarget,
  openDatabase,
  type Session,
} from '../../operators/sinks/postgres/driver.ts';
import { createPostgresSink } from '../../operators/sinks/postgres/postgres.ts';
import { accessRecord, DeadLetters, serverQuery, Target, testContext } from './helpers.ts';

const NOW = Date.parse('2024-05-01T12:00:00Z');

function batch(from: number, count: number) {
  return Array.from({ length: count }, (_, i) => accessRecord(from + i, '2024-05-01T11:00:00Z'));
}

type Fault = 'commit-lost-after' | 'commit-lost-before';

/** Wraps the real database so that the next COMMIT of a load fails as a dropped connection would. */
function faulty(state: { fault: Fault | undefined }) {
  return async (target: DatabaseTarget, options: ConnectOptions): Promise<Database> => {
    const real = await openDatabase(target, options);
    return {
      kind: real.kind,
      label: real.label,
      close: () => real.close(),
      async session(): Promise<Session> {
        const inner = await real.session();
        let broken = false;
        return {
          get broken() {
            return broken || inner.broken;
          },
          script: (sql) => inner.script(sql),
          copyIn: (t, format) => inner.copyIn(t, format),
          release: (destroy) => inner.release(destroy),
          async query(sql, params) {
            const fault = state.fault;
            if (sql === 'COMMIT' && fault) {
              state.fault = undefined;
              broken = true;
              if (fault === 'commit-lost-after') await inner.query(sql, params);
              else await inner.query('ROLLBACK');
              throw new Error('Connection terminated unexpectedly');
            }
            return inner.query(sql, params);
          },
        };
      },
    };
  };
}

describe('postgres sink faults (server)', () => {
  let target: Target;
  let sink: Sink | undefined;
  beforeEach(async () => {
    target = await Target.create('server');
  });
  afterEach(async () => {
    await sink?.close?.();
    await target.dispose();
  });

  async function count(): Promise<{ n: number; d: number }> {
    const [row] = await serverQuery(
      `SELECT count(*)::int AS n, count(DISTINCT path)::int AS d FROM "${target.schema}".access_logs`,
    );
    return row as { n: number; d: number };
  }

  it('replays acknowledged rows into a new transaction after the connection is killed', async () => {
    const ctx = testContext(target.dataDir, 'killme');
    sink = target.sink(target.options({ reconnect_initial_backoff_ms: 10 }), ctx, () => NOW);
    await sink.open?.();
    const dl = new DeadLetters();
    await sink.write(batch(0, 400), dl);
    await sink.write(batch(400, 400), dl);
    const killed = await serverQuery(
      "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name LIKE 'etl test/killme %'",
    );
    expect(killed).toEqual([{ ok: true }]);
    await sink.write(batch(800, 200), dl);
    await sink.commit?.({ id: 1, positions: {} });
    await sink.write(batch(1000, 100), dl);
    await serverQuery(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'etl test/killme %'",
    );
    await sink.commit?.({ id: 2, positions: {} });
    expect(await count()).toEqual({ n: 1100, d: 1100 });
    expect((await sink.committedCheckpoint?.())?.id).toBe(2);
    expect(ctx.logs.filter((l) => l.message.startsWith('replaying rows not yet committed'))).toHaveLength(2);
  });

  it.each<[Fault, string]>([
    ['commit-lost-after', 'the commit happened'],
    ['commit-lost-before', 'the commit never happened'],
  ])('settles a COMMIT whose answer was lost (%s: %s) without losing or duplicating rows', async (fault) => {
    const state: { fault: Fault | undefined } = { fault: undefined };
    sink = createPostgresSink(target.options({ reconnect_initial_backoff_ms: 10 }), testContext(target.dataDir), {
      env: {},
      now: () => NOW,
      openDatabase: faulty(state),
    });
    await sink.open?.();
    await sink.write(batch(0, 300), new DeadLetters());
    state.fault = fault;
    await sink.commit?.({ id: 7, positions: { files: 300 } });
    expect(state.fault).toBeUndefined();
    expect(await count()).toEqual({ n: 300, d: 300 });
    expect((await sink.committedCheckpoint?.())?.id).toBe(7);
    await sink.write(batch(300, 50), new DeadLetters());
    await sink.commit?.({ id: 8, positions: {} });
    expect(await count()).toEqual({ n: 350, d: 350 });
  });

  it('dead-letters rows PostgreSQL itself refuses, as stored and with their origin, and keeps the rest', async () => {
    sink = target.sink(target.options(), testContext(target.dataDir), () => NOW);
    await sink.open?.();
    // A rule the encoder cannot know about: a user's CHECK constraint.
    await serverQuery(`ALTER TABLE "${target.schema}".access_logs ADD CONSTRAINT no_teapots CHECK (status <> 203)`);
    const dl = new DeadLetters();
    await sink.write(
      batch(0, 100).map((r) => ({ ...r, status: 200 })),
      dl,
    );
    const mixed = batch(100, 100).map(
      (r, i): EtlRecord => ({ ...r, [ORIGIN]: { source: 'logs', file: 'a.log', line: i + 1 } }),
    );
    await sink.write(mixed, dl);
    // Rows of another day need a new partition: the COPY ends first, so the refusals are known in this write.
    await sink.write(
      Array.from({ length: 10 }, (_, i) => accessRecord(200 + i, '2024-04-20T10:00:00Z', { status: 200 })),
      dl,
    );
    const refused = mixed.filter((r) => r.status === 203);
    expect(refused.length).toBe(20);
    // As stored: NULLs are not kept; the origin is.
    const asStored = (r: EtlRecord) => ({
      ...Object.fromEntries(Object.entries(r).filter(([, v]) => v !== null)),
      [ORIGIN]: r[ORIGIN],
    });
    expect(dl.records.map((d) => d.record)).toEqual(refused.map(asStored));
    expect(dl.records[0]?.reason).toMatch(/refused by PostgreSQL: .*no_teapots/);
    await sink.commit?.({ id: 1, positions: {} });
    expect(await count()).toEqual({ n: 190, d: 190 });
  });

  it('dead-letters rows refused at a checkpoint, after their batch was acknowledged, through phase one', async () => {
    sink = target.sink(target.options(), testContext(target.dataDir), () => NOW);
    await sink.open?.();
    await serverQuery(`ALTER TABLE "${target.schema}".access_logs ADD CONSTRAINT no_teapots CHECK (status <> 203)`);
    const dl = new DeadLetters();
    await sink.write(batch(0, 100), dl);
    const late = new DeadLetters();
    await sink.prepareCommit?.({ id: 1, positions: {} }, late);
    await sink.commit?.({ id: 1, positions: {} });
    expect(dl.records).toEqual([]);
    expect(await count()).toEqual({ n: 80, d: 80 });
    expect(late.records).toHaveLength(20);
    expect(late.records.every((r) => r.record.status === 203)).toBe(true);
    expect(late.records[0]?.reason).toMatch(/refused by PostgreSQL: .*no_teapots/);
    // No table of its own for them any more: the sink's dead_letter port carries them.
    expect(await serverQuery(`SELECT to_regclass('"${target.schema}".etl_rejected') AS t`)).toEqual([{ t: null }]);
  });

  it.each([
    [0, /^cannot reach PostgreSQL \(postgres:\/\/etl:\*\*\*@127\.0\.0\.1:1\/none\): .*Check the host and port/],
    [0.3, /^cannot reach PostgreSQL \(.*\) within wait_for_server_seconds \(0\.3s\): /],
  ])(
    'fails the start at once when the server is never reached (wait_for_server_seconds: %s)',
    async (wait, message) => {
      sink = target.sink(
        target.options({
          url: 'postgres://etl:hunter2@127.0.0.1:1/none',
          wait_for_server_seconds: wait,
          reconnect_initial_backoff_ms: 20,
          reconnect_max_backoff_ms: 50,
        }),
        testContext(target.dataDir),
        () => NOW,
      );
      const started = Date.now();
      const error = await sink.open?.().then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(error?.message).toMatch(message);
      expect(error?.message).not.toContain('hunter2');
      if (wait > 0) expect(Date.now() - started).toBeGreaterThanOrEqual(wait * 1000);
    },
  );
});

describe('rows PostgreSQL refuses (embedded: errors cross from the database thread)', () => {
  let target: Target;
  let sink: Sink | undefined;
  beforeEach(async () => {
    target = await Target.create('embedded');
    // The table, then a rule the encoder cannot know about: a user's CHECK constraint.
    sink = target.sink(target.options(), testContext(target.dataDir), () => NOW);
    await sink.open?.();
    await sink.close?.();
    await target.query(`ALTER TABLE "${target.schema}".access_logs ADD CONSTRAINT no_teapots CHECK (status <> 203)`);
    sink = target.sink(target.options(), testContext(target.dataDir), () => NOW);
    await sink.open?.();
  });
  afterEach(async () => {
    await sink?.close?.();
    await target.dispose();
  });

  async function count(): Promise<number> {
    await sink?.close?.();
    const [row] = await target.query(`SELECT count(*)::int AS n FROM "${target.schema}".access_logs`);
    return (row as { n: number }).n;
  }

  it('dead-letters them with their origin and keeps the rest', async () => {
    const dl = new DeadLetters();
    const mixed = batch(0, 100).map(
      (r, i): EtlRecord => ({ ...r, [ORIGIN]: { source: 'logs', file: 'a.log', line: i + 1 } }),
    );
    await sink?.write(mixed, dl);
    // Rows of another day need a new partition: the COPY ends first, so the refusals are known in this write.
    await sink?.write(
      Array.from({ length: 10 }, (_, i) => accessRecord(100 + i, '2024-04-20T10:00:00Z', { status: 200 })),
      dl,
    );
    expect(dl.records.map((d) => d.record[ORIGIN])).toEqual(
      mixed.filter((r) => r.status === 203).map((r) => r[ORIGIN]),
    );
    expect(dl.records[0]?.reason).toMatch(/refused by PostgreSQL: .*no_teapots/);
    await sink?.commit?.({ id: 1, positions: {} });
    expect(await count()).toBe(90);
  });

  it('dead-letters those refused at a checkpoint through phase one', async () => {
    const dl = new DeadLetters();
    await sink?.write(batch(0, 100), dl);
    const late = new DeadLetters();
    await sink?.prepareCommit?.({ id: 1, positions: {} }, late);
    await sink?.commit?.({ id: 1, positions: {} });
    expect(dl.records).toEqual([]);
    expect(await count()).toBe(80);
    expect(late.records).toHaveLength(20);
    expect(late.records[0]?.reason).toMatch(/no_teapots/);
  });
});
