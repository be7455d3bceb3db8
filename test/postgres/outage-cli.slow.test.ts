/**
 * Outage through the CLI: `etl apply` loads a 200k-line file into the test's own PostgreSQL, which is
 * stopped hard in the middle of the run and started again 3 s after the run says it is pausing. The run
 * waits (backpressure: its memory does not grow while the server is away), then finishes, and every line
 * is stored exactly once.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../../engine/retry.ts';
import { outputSeen } from '../support/cli.ts';
import { apply, rssMiB, writeLog, writePipeline } from './cli.ts';
import { ThrowawayPostgres } from './throwaway.ts';

const LINES = 200_000;

describe('outage during etl apply (throwaway PostgreSQL)', () => {
  let server: ThrowawayPostgres;
  let dir: string;
  beforeAll(async () => {
    server = await ThrowawayPostgres.create();
    await server.start();
    dir = await mkdtemp(join(tmpdir(), 'etl-outage-'));
  });
  afterAll(async () => {
    await server?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('pauses while the server is down, with bounded memory, and loses or duplicates nothing', async () => {
    const log = join(dir, 'access.log');
    await writeLog(log, LINES, 5);
    const pipeline = await writePipeline({
      dir,
      log,
      name: 'outage',
      sink: `url: "${server.url}", reconnect_initial_backoff_ms: 50, reconnect_max_backoff_ms: 500`,
    });
    const state = join(dir, '.etl', 'state', 'outage.json');
    const started = Date.now() - 1;
    const run = apply(pipeline);
    let exited = false;
    void run.exited.then(() => {
      exited = true;
    });
    while (!exited && !(existsSync(state) && statSync(state).mtimeMs > started)) await sleep(5);
    expect(exited, run.stderr()).toBe(false);

    const paused = outputSeen(run.child.stderr as Readable, 'pausing until it is back');
    await server.stop();
    expect(await paused, run.stderr()).toBe(true);
    const pid = run.child.pid as number;
    const samples: number[] = [];
    for (let i = 0; i < 30; i++) {
      samples.push(await rssMiB(pid));
      await sleep(100);
    }
    expect(exited, 'the run must wait for the server, not fail').toBe(false);
    await server.start();
    expect(await run.exited, run.stderr()).toBe(0);

    // While the server was away nothing was buffered beyond what was in flight.
    const growth = Math.max(...samples) - (samples[0] as number);
    expect(growth).toBeLessThan(64);
    expect(Math.max(...samples)).toBeLessThan(512);

    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    try {
      const { rows } = await client.query(
        "SELECT count(*)::int AS n, count(DISTINCT substring(query from 'seq=(\\d+)'))::int AS d FROM access_logs",
      );
      expect(rows[0]).toEqual({ n: LINES, d: LINES });
    } finally {
      await client.end();
    }
  });
});
