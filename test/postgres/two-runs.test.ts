/**
 * Two runs of one pipeline against one PostgreSQL server (two machines, each with its own state directory):
 * the sink holds an advisory lock per (schema, pipeline, sink) on its own session, so that the second run
 * refuses at once, naming the holder, and proceeds once the first has closed; a reconnect takes the lock
 * again, and fails when another run took it meanwhile.
 */
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Sink } from '../../engine/operator.ts';
import { advisoryKey } from '../../operators/sinks/postgres/advisory-lock.ts';
import {
  type ConnectOptions,
  type Database,
  type DatabaseTarget,
  openDatabase as realOpenDatabase,
  type Session,
} from '../../operators/sinks/postgres/driver.ts';
import { createPostgresSink } from '../../operators/sinks/postgres/postgres.ts';
import { apply, type Run, writeLog } from './cli.ts';
import { accessRecord, DeadLetters, PG_URL, serverQuery, Target, testContext } from './helpers.ts';

const NOW = Date.parse('2024-05-01T12:00:00Z');

function batch(from: number, count: number) {
  return Array.from({ length: count }, (_, i) => accessRecord(from + i, '2024-05-01T11:00:00Z'));
}

/** The backends holding the sink's advisory lock, with their application_name. */
async function lockHolders(schema: string, pipeline: string, sink: string) {
  const key = advisoryKey(schema, pipeline, sink);
  return serverQuery(
    `SELECT l.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
        AND l.classid::bigint = $1 AND l.objid::bigint = $2`,
    [String((key >> 32n) & 0xffffffffn), String(key & 0xffffffffn)],
  );
}

describe('two runs of one postgres sink on one server', () => {
  let target: Target;
  const sinks: Sink[] = [];
  const clients: pg.Client[] = [];
  beforeEach(async () => {
    target = await Target.create('server');
  });
  afterEach(async () => {
    for (const sink of sinks.splice(0)) await sink.close?.();
    for (const client of clients.splice(0)) await client.end().catch(() => {});
    await target.dispose();
  });

  function sink(id = 'store', pipeline = 'test'): Sink {
    const made = target.sink(
      target.options({ reconnect_initial_backoff_ms: 10 }),
      testContext(target.dataDir, id, pipeline),
      () => NOW,
    );
    sinks.push(made);
    return made;
  }

  it('refuses a second run at once, naming the holder, and lets it proceed once the first has closed', async () => {
    const first = sink();
    await first.open?.();
    await first.write(batch(0, 100), new DeadLetters());
    const [holder] = await lockHolders(target.schema, 'test', 'store');
    const name = `etl test/store pid ${process.pid}@${hostname()}`.slice(0, 63);
    expect(holder?.application_name).toBe(name);

    const second = sink();
    const refused = await second.open?.().then(
      () => undefined,
      (error: Error) => error,
    );
    expect(refused?.message).toMatch(
      new RegExp(
        `^another run of pipeline test holds the lock of postgres sink store on PostgreSQL \\(postgres://.*, ` +
          `schema ${target.schema}\\): pid ${holder?.pid}, application_name "${name}", client 127\\.0\\.0\\.1, connected since .+; ` +
          'two runs loading one table at once would duplicate rows: wait for it to finish, or stop it',
      ),
    );
    expect(refused).toMatchObject({ code: 'ETL_LOCKED' });
    await second.close?.();

    // Other sinks, and the same sink in another pipeline, have locks of their own.
    await sink('other').open?.();
    await sink('store', 'another').open?.();

    await first.commit?.({ id: 1, positions: {} });
    await first.close?.();
    const third = sink();
    await third.open?.();
    await third.write(batch(100, 50), new DeadLetters());
    await third.commit?.({ id: 2, positions: {} });
    const [row] = await serverQuery(`SELECT count(*)::int AS n FROM "${target.schema}".access_logs`);
    expect(row).toEqual({ n: 150 });
  });

  it('waits for the holder when the run was asked to (--wait), says so, and proceeds once it has closed', async () => {
    const first = sink();
    await first.open?.();
    const stop = new AbortController();
    const ctx = { ...testContext(target.dataDir, 'store', 'test'), waitForLocks: stop.signal };
    const second = target.sink(target.options({ reconnect_initial_backoff_ms: 10 }), ctx, () => NOW);
    sinks.push(second);
    const opened = Promise.resolve(second.open?.());
    await vi.waitFor(() => expect(ctx.logs.map((l) => l.message).join('\n')).toContain('waiting for another run'));
    await first.close?.();
    await opened;
    await second.write(batch(0, 10), new DeadLetters());
    await second.commit?.({ id: 1, positions: {} });

    // A stop while it waits ends the wait with the refusal.
    const third = target.sink(
      target.options({ reconnect_initial_backoff_ms: 10 }),
      { ...testContext(target.dataDir, 'store', 'test'), waitForLocks: stop.signal },
      () => NOW,
    );
    sinks.push(third);
    const refused = Promise.resolve(third.open?.()).then(
      () => undefined,
      (error: Error) => error,
    );
    stop.abort();
    expect(await refused).toMatchObject({ code: 'ETL_LOCKED' });
  });

  it("keeps the URL's own application_name", async () => {
    const mine = target.sink(
      target.options({ url: `${PG_URL}?application_name=nightly%20import` }),
      testContext(target.dataDir),
      () => NOW,
    );
    sinks.push(mine);
    await mine.open?.();
    expect(await lockHolders(target.schema, 'test', 'store')).toEqual([
      expect.objectContaining({ application_name: 'nightly import' }),
    ]);
  });

  it('takes the lock again after a reconnect', async () => {
    const one = sink();
    await one.open?.();
    await one.write(batch(0, 100), new DeadLetters());
    const [before] = await lockHolders(target.schema, 'test', 'store');
    await serverQuery('SELECT pg_terminate_backend($1, 10000)', [before?.pid]);
    await one.write(batch(100, 100), new DeadLetters());
    await one.commit?.({ id: 1, positions: {} });
    const after = await lockHolders(target.schema, 'test', 'store');
    expect(after).toHaveLength(1);
    expect(after[0]?.pid).not.toBe(before?.pid);
    expect(after[0]?.application_name).toBe(before?.application_name);
    const [row] = await serverQuery(`SELECT count(*)::int AS n FROM "${target.schema}".access_logs`);
    expect(row).toEqual({ n: 200 });
  });

  it('ends a lost session of its own that the server still holds the lock for, and takes the lock again', async () => {
    // The connection is lost at COMMIT as far as the sink can tell, while the server keeps its session (a
    // network cut that the server has not noticed yet): the lock, and the transaction, stay with it.
    let lose = false;
    const openDatabase = async (t: DatabaseTarget, options: ConnectOptions): Promise<Database> => {
      const real = await realOpenDatabase(t, options);
      const leaked: Session[] = [];
      return {
        kind: real.kind,
        label: real.label,
        close: async () => {
          // The pool ends once every connection is back.
          for (const session of leaked) session.release(true);
          await real.close();
        },
        async session(): Promise<Session> {
          const inner = await real.session();
          let lost = false;
          return {
            get broken() {
              return lost || inner.broken;
            },
            script: (sql) => inner.script(sql),
            copyIn: (to, format) => inner.copyIn(to, format),
            release: (destroy) => {
              if (!lost) inner.release(destroy);
            },
            async query(sql, params) {
              if (sql === 'COMMIT' && lose) {
                lose = false;
                lost = true;
                leaked.push(inner);
                throw new Error('Connection terminated unexpectedly');
              }
              return inner.query(sql, params);
            },
          };
        },
      };
    };
    const one = createPostgresSink(target.options({ reconnect_initial_backoff_ms: 10 }), testContext(target.dataDir), {
      env: {},
      now: () => NOW,
      openDatabase,
    });
    sinks.push(one);
    await one.open?.();
    await one.write(batch(0, 100), new DeadLetters());
    const [before] = await lockHolders(target.schema, 'test', 'store');
    lose = true;
    await one.commit?.({ id: 1, positions: {} });
    const after = await lockHolders(target.schema, 'test', 'store');
    expect(after).toHaveLength(1);
    expect(after[0]?.pid).not.toBe(before?.pid);
    expect(await serverQuery('SELECT pid FROM pg_stat_activity WHERE pid = $1', [before?.pid])).toEqual([]);
    const [row] = await serverQuery(`SELECT count(*)::int AS n FROM "${target.schema}".access_logs`);
    expect(row).toEqual({ n: 100 });
  });

  it('ends the session of a killed etl process of this host that the server has not seen go, and takes over', async () => {
    const dead = spawn(process.execPath, ['-e', '0']);
    await new Promise((resolve) => dead.on('exit', resolve));
    const orphan = new pg.Client({
      connectionString: PG_URL,
      application_name: `etl test/store pid ${dead.pid}@${hostname()}`,
    });
    orphan.on('error', () => {});
    clients.push(orphan);
    await orphan.connect();
    await orphan.query('SELECT pg_advisory_lock($1::bigint)', [String(advisoryKey(target.schema, 'test', 'store'))]);
    const orphanPid = (await orphan.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    const one = sink();
    await one.open?.();
    const holders = await lockHolders(target.schema, 'test', 'store');
    expect(holders.map((h) => h.application_name)).toEqual([`etl test/store pid ${process.pid}@${hostname()}`]);
    expect(await serverQuery('SELECT pid FROM pg_stat_activity WHERE pid = $1', [orphanPid])).toEqual([]);
  });

  it('fails, naming the new holder, when another run took the lock while it was disconnected', async () => {
    const one = sink();
    await one.open?.();
    await one.write(batch(0, 100), new DeadLetters());
    const [before] = await lockHolders(target.schema, 'test', 'store');
    const other = new pg.Client({ connectionString: PG_URL, application_name: 'the other run' });
    clients.push(other);
    await other.connect();
    const otherPid = (await other.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    await serverQuery('SELECT pg_terminate_backend($1, 10000)', [before?.pid]);
    // Waits until the killed session's lock is gone, then holds it.
    await other.query('SELECT pg_advisory_lock($1::bigint)', [String(advisoryKey(target.schema, 'test', 'store'))]);
    const failed = await (async () => {
      await one.write(batch(100, 100), new DeadLetters());
      await one.commit?.({ id: 1, positions: {} });
    })().then(
      () => undefined,
      (error: Error) => error,
    );
    expect(failed?.message).toMatch(
      new RegExp(
        `^after reconnecting, another run of pipeline test holds the lock of postgres sink store on PostgreSQL .*: ` +
          `pid ${otherPid}, application_name "the other run", .*; this run stops so that the two do not load the same rows`,
      ),
    );
    const [row] = await serverQuery(`SELECT count(*)::int AS n FROM "${target.schema}".access_logs`);
    expect(row).toEqual({ n: 0 });
  });
});

describe('two `etl apply` of one pipeline on two machines (own state directories), one server', () => {
  let target: Target;
  const runs: Run[] = [];
  beforeEach(async () => {
    target = await Target.create('server');
  });
  afterEach(async () => {
    for (const run of runs.splice(0)) {
      if (run.child.exitCode === null) run.child.kill('SIGKILL');
      await run.exited;
    }
    await target.dispose();
  });

  function start(pipeline: string): Run {
    const run = apply(pipeline);
    runs.push(run);
    return run;
  }

  /** The pipeline as one machine has it: its own data_dir, following a log file of its own. */
  async function machine(name: string): Promise<string> {
    const dir = join(target.dataDir, name);
    await mkdir(dir, { recursive: true });
    const log = join(dir, 'access.log');
    await writeLog(log, 2000);
    const file = join(dir, 'pipeline.yaml');
    await writeFile(
      file,
      `apiVersion: etl/v1
kind: Pipeline
metadata: { name: shared }
spec:
  settings: { data_dir: ${join(dir, '.etl')} }
  sources:
    logs: { type: file, paths: ["${log}"], follow: true }
  operators:
    parsed: { type: parse, inputs: [logs], format: auto }
  sinks:
    store: { type: postgres, inputs: [parsed], url: "${PG_URL}", schema: ${target.schema} }
`,
    );
    return file;
  }

  /** Resolves once the sink of the `etl` process `pid` holds the lock. */
  async function holding(pid: number | undefined): Promise<void> {
    for (;;) {
      const holders = await lockHolders(target.schema, 'shared', 'store');
      if (holders.some((h) => String(h.application_name).includes(` pid ${pid}@`))) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it('refuses the second at once, naming the first, and runs it once the first has stopped', async () => {
    const [a, b] = [await machine('a'), await machine('b')];
    const first = start(a);
    await holding(first.child.pid);
    const second = start(b);
    expect(await second.exited).toBe(1);
    expect(second.stderr()).toContain('another run of pipeline shared holds the lock of postgres sink store');
    expect(second.stderr()).toContain(`application_name "etl shared/store pid ${first.child.pid}@${hostname()}"`);
    first.child.kill('SIGTERM');
    expect(await first.exited, first.stderr()).toBe(0);
    const third = start(b);
    await holding(third.child.pid);
    third.child.kill('SIGTERM');
    expect(await third.exited, third.stderr()).toBe(0);
  });
});
