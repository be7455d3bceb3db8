/**
 * Crash loop through the CLI: `etl apply` (file → parse → postgres) is SIGKILLed at random points, shortly
 * mostly shortly after it checkpointed, and rerun each time; in the end the table holds every line of the file exactly
 * once. Against the server and the embedded database, 20 kills over 200k lines each; and with two postgres sinks
 * sharing the one embedded database (each holds it only to commit), 10 kills over 50k lines.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sleep } from '../../engine/retry.ts';
import { openDatabase } from '../../operators/sinks/postgres/driver.ts';
import { prng } from '../support/random.ts';
import { apply, writeLog, writePipeline } from './cli.ts';
import { PG_URL, serverQuery } from './helpers.ts';

const SEQ_STATS =
  "SELECT count(*)::int AS n, count(DISTINCT substring(query from 'seq=(\\d+)'))::int AS d, " +
  "max(substring(query from 'seq=(\\d+)')::int) AS top FROM access_logs";

/** Waits until the pipeline has checkpointed once in this run (the state file changed), or exited. */
async function firstCheckpoint(stateFile: string, since: number, exited: () => boolean): Promise<void> {
  while (!exited()) {
    if (existsSync(stateFile) && statSync(stateFile).mtimeMs > since) return;
    await sleep(5);
  }
}

interface Loop {
  kills: number;
  /** Kills that hit a run which had not finished the file. */
  midLoad: number;
}

/**
 * Kills `kills` runs: while the file is not done, shortly after each run's first checkpoint (so every run
 * gets a little further); once a run has finished on its own, at a random point of the reruns' startup.
 */
async function crashLoop(pipeline: string, stateFile: string, kills: number, seed: number): Promise<Loop> {
  const random = prng(seed);
  const loop: Loop = { kills: 0, midLoad: 0 };
  let complete = false;
  while (loop.kills < kills) {
    const started = Date.now() - 1;
    const run = apply(pipeline);
    let done = false;
    void run.exited.then(() => {
      done = true;
    });
    if (complete) await sleep(Math.floor(random() * 400));
    else {
      await firstCheckpoint(stateFile, started, () => done);
      await sleep(Math.floor(random() * 40));
    }
    if (done) {
      expect(await run.exited, run.stderr()).toBe(0);
      complete = true;
      continue;
    }
    run.child.kill('SIGKILL');
    await run.exited;
    loop.kills++;
    if (!complete) loop.midLoad++;
  }
  const last = apply(pipeline);
  expect(await last.exited, last.stderr()).toBe(0);
  return loop;
}

describe('crash loop through etl apply', () => {
  let dir: string | undefined;
  let schema: string | undefined;
  afterEach(async () => {
    if (schema) await serverQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    if (dir) await rm(dir, { recursive: true, force: true });
    schema = undefined;
  });

  it('SIGKILLed 20 times over 200k lines, the server table holds every line exactly once', async () => {
    const LINES = 200_000;
    dir = await mkdtemp(join(tmpdir(), 'etl-crash-'));
    schema = `etl_crash_${process.pid}`;
    const log = join(dir, 'access.log');
    await writeLog(log, LINES);
    const pipeline = await writePipeline({
      dir,
      log,
      sink: `url: "${PG_URL}", schema: ${schema}`,
      checkpointIntervalSeconds: 0.05,
    });
    const loop = await crashLoop(pipeline, join(dir, '.etl', 'state', 'crashloop.json'), 20, 42);
    expect(loop.kills).toBe(20);
    expect(loop.midLoad).toBeGreaterThanOrEqual(10);
    const [stats] = await serverQuery(SEQ_STATS.replace('access_logs', `"${schema}".access_logs`));
    expect(stats).toEqual({ n: LINES, d: LINES, top: LINES - 1 });
    // A rerun after the end finds nothing new to load.
    const again = apply(pipeline);
    expect(await again.exited).toBe(0);
    const [after] = await serverQuery(`SELECT count(*)::int AS n FROM "${schema}".access_logs`);
    expect(after?.n).toBe(LINES);
  });

  it('SIGKILLed 20 times over 200k lines, the embedded table holds every line exactly once', async () => {
    const LINES = 200_000;
    dir = await mkdtemp(join(tmpdir(), 'etl-crash-embedded-'));
    const log = join(dir, 'access.log');
    await writeLog(log, LINES, 11);
    const pipeline = await writePipeline({ dir, log, sink: 'table: access_logs', checkpointIntervalSeconds: 0.05 });
    const loop = await crashLoop(pipeline, join(dir, '.etl', 'state', 'crashloop.json'), 20, 7);
    expect(loop.kills).toBe(20);
    expect(loop.midLoad).toBeGreaterThanOrEqual(10);
    expect(await embeddedStats(dir, ['access_logs'])).toEqual([{ n: LINES, d: LINES, top: LINES - 1 }]);
  });

  it('SIGKILLed 10 times over 50k lines, two sinks sharing the embedded database each hold every line once', async () => {
    const LINES = 50_000;
    dir = await mkdtemp(join(tmpdir(), 'etl-crash-shared-'));
    const log = join(dir, 'access.log');
    await writeLog(log, LINES, 13);
    const pipeline = await writePipeline({
      dir,
      log,
      sink: 'table: access_logs, partition: day',
      secondSink: 'table: access_copy, partition: none',
      checkpointIntervalSeconds: 0.05,
    });
    const loop = await crashLoop(pipeline, join(dir, '.etl', 'state', 'crashloop.json'), 10, 5);
    expect(loop.kills).toBe(10);
    expect(loop.midLoad).toBeGreaterThanOrEqual(5);
    const once = { n: LINES, d: LINES, top: LINES - 1 };
    expect(await embeddedStats(dir, ['access_logs', 'access_copy'])).toEqual([once, once]);
  });
});

/** SEQ_STATS of each table in the embedded database under `dir`. */
async function embeddedStats(dir: string, tables: string[]): Promise<unknown[]> {
  const db = await openDatabase(
    { kind: 'embedded', dir: join(dir, '.etl', 'pgdata') },
    { poolMaxConnections: 1, connectTimeoutMs: 5000, applicationName: 'test' },
  );
  try {
    const session = await db.session();
    const stats: unknown[] = [];
    for (const table of tables) stats.push((await session.query(SEQ_STATS.replace('access_logs', table))).rows[0]);
    session.release();
    return stats;
  } finally {
    await db.close();
  }
}
