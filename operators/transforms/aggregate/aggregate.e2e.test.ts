/**
 * The aggregate in a followed pipeline through the real CLI, into PostgreSQL: a window closes on a timer tick
 * while no line arrives (the watermark goes on once the source is idle), and a late line corrects its row in
 * place (`unique_key` + `on_conflict: update`) instead of adding one.
 */
import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { apply, type Run } from '../../../test/postgres/cli.ts';
import { PG_URL, serverQuery, Target } from '../../../test/postgres/helpers.ts';

const line = (time: string, path: string, bytes: number) =>
  `192.0.2.1 - - [01/Jan/2026:00:00:${time} +0000] "GET ${path} HTTP/1.1" 200 ${bytes} "-" "curl/8"\n`;

describe('aggregate in a followed pipeline', () => {
  let target: Target;
  let run: Run | undefined;
  beforeEach(async () => {
    target = await Target.create('server');
  });
  afterEach(async () => {
    if (run && run.child.exitCode === null) {
      run.child.kill('SIGKILL');
      await run.exited;
    }
    await serverQuery(`DROP SCHEMA IF EXISTS ${target.schema} CASCADE`);
    await target.dispose();
  });

  /** Resolves with the rows once `done` holds for them (the sink commits every 0.1 s). */
  async function rowsWhen(done: (rows: Record<string, unknown>[]) => boolean): Promise<Record<string, unknown>[]> {
    for (;;) {
      const [exists] = await serverQuery('SELECT to_regclass($1) AS t', [`${target.schema}.per_window`]);
      if (exists?.t !== null) {
        const rows = await serverQuery(
          `SELECT path, requests::int AS requests, bytes_sum::int AS bytes_sum FROM ${target.schema}.per_window ORDER BY window_start, path`,
        );
        if (done(rows)) return rows;
      }
      expect(run?.child.exitCode, run?.stderr()).toBeNull();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it('closes a window on ticks without further input, and a late line updates its row', async () => {
    const log = join(target.dataDir, 'access.log');
    await writeFile(log, '');
    const pipeline = join(target.dataDir, 'pipeline.yaml');
    await writeFile(
      pipeline,
      `apiVersion: etl/v1
kind: Pipeline
metadata: { name: aggregate_follow }
spec:
  settings:
    data_dir: ${join(target.dataDir, '.etl')}
    checkpoint_interval_seconds: 0.1
    watermark_lateness_seconds: 0
    idle_source_seconds: 0.2
  sources:
    logs: { type: file, paths: ["${log}"], follow: true }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
    per_window:
      type: aggregate
      inputs: [parsed]
      window_seconds: 2
      allowed_lateness_seconds: 3600
      group_by: [path]
      aggregates: { requests: { fn: count }, bytes_sum: { fn: sum, field: bytes } }
  sinks:
    rollup:
      type: postgres
      inputs: [per_window]
      url: "${PG_URL}"
      schema: ${target.schema}
      table: per_window
      time_column: window_start
      partition: none
      unique_key: [window_start, path]
      on_conflict: update
`,
    );
    run = apply(pipeline);
    await appendFile(log, line('00', '/a', 10) + line('00', '/b', 5) + line('01', '/a', 20) + line('01', '/a', 30));
    // No line comes after these: only ticks, with the watermark moving on once the source is idle, close the window.
    expect(await rowsWhen((rows) => rows.length === 2)).toEqual([
      { path: '/a', requests: 3, bytes_sum: 60 },
      { path: '/b', requests: 1, bytes_sum: 5 },
    ]);
    expect(run.child.exitCode).toBeNull();

    // A late line of that window: its row is corrected, not doubled.
    await appendFile(log, line('01', '/a', 40));
    expect(await rowsWhen((rows) => rows[0]?.requests === 4)).toEqual([
      { path: '/a', requests: 4, bytes_sum: 100 },
      { path: '/b', requests: 1, bytes_sum: 5 },
    ]);
    run.child.kill('SIGTERM');
    expect(await run.exited, run.stderr()).toBe(0);
  });
});
