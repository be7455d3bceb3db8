/**
 * Kill loop through the CLI: `etl apply` (file → parse → aggregate → postgres rollup) is SIGKILLed 20 times over
 * 200k lines, mostly shortly after it checkpointed, and rerun each time. In the end the rollup table equals, row
 * for row (quantiles to the bit, distinct counts exact or from HyperLogLog registers), the one an uninterrupted
 * run wrote, and holds the known totals of the file: no record counted twice or lost, whatever state the
 * aggregate restored.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sleep } from '../../../engine/retry.ts';
import { apply } from '../../../test/postgres/cli.ts';
import { prng } from '../../../test/support/random.ts';
import { PG_URL, serverQuery } from '../../../test/postgres/helpers.ts';
import { writeLogFile } from '../../sources/generator/write-file.ts';

const LINES = 200_000;
const schemas: string[] = [];
const dirs: string[] = [];
afterAll(async () => {
  for (const schema of schemas) await serverQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function pipelineFile(dir: string, log: string, schema: string): Promise<string> {
  const file = join(dir, 'pipeline.yaml');
  await writeFile(
    file,
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: rollup_kill }
spec:
  settings:
    data_dir: ${join(dir, '.etl')}
    checkpoint_interval_seconds: 0.05
    batch_max_records: 500
  sources:
    logs: { type: file, paths: ["${log}"] }
  operators:
    parsed: { type: parse, inputs: [logs], format: nginx_combined_request_time }
    per_minute:
      type: aggregate
      inputs: [parsed]
      window_seconds: 60
      allowed_lateness_seconds: 30
      group_by: [method, status]
      aggregates:
        requests: { fn: count }
        status_5xx: { fn: count, field: status, between: [500, 599] }
        bytes_sum: { fn: sum, field: bytes }
        bytes_max: { fn: max, field: bytes }
        clients: { fn: distinct, field: client_ip }
        latency_avg_ms: { fn: avg, field: request_time_ms }
        latency_min_ms: { fn: min, field: request_time_ms }
        latency_p50_ms: { fn: p50, field: request_time_ms }
        latency_p95_ms: { fn: p95, field: request_time_ms }
        latency_p99_ms: { fn: p99, field: request_time_ms }
  sinks:
    rollup:
      type: postgres
      inputs: [per_minute]
      url: "${PG_URL}"
      schema: ${schema}
      table: per_minute
      time_column: window_start
      partition: none
      unique_key: [window_start, method, status]
      on_conflict: update
`,
  );
  return file;
}

/** Every row, as text, in key order. */
async function table(schema: string): Promise<string[]> {
  const rows = await serverQuery(
    `SELECT t::text AS row FROM "${schema}".per_minute t ORDER BY window_start, method, status`,
  );
  return rows.map((r) => String(r.row));
}

/** Waits until the pipeline has checkpointed once in this run (the state file changed), or exited. */
async function firstCheckpoint(stateFile: string, since: number, exited: () => boolean): Promise<void> {
  while (!exited()) {
    if (existsSync(stateFile) && statSync(stateFile).mtimeMs > since) return;
    await sleep(5);
  }
}

describe('aggregate kill loop through etl apply', () => {
  it('SIGKILLed 20 times over 200k lines, the rollup equals an uninterrupted run’s, row for row', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'etl-aggregate-kill-'));
    dirs.push(dir);
    const log = join(dir, 'access.log');
    await writeLogFile(log, LINES, {
      format: 'nginx_combined_request_time',
      seed: 5,
      malformed_ratio: 0,
      requests_per_second: 20,
    });
    // The known answers, from the file itself: its lines and bytes.
    const text = readFileSync(log, 'utf8');
    let bytes = 0;
    let lines = 0;
    for (const match of text.matchAll(/" \d{3} (\d+|-) "/g)) {
      lines++;
      if (match[1] !== '-') bytes += Number(match[1]);
    }
    expect(lines).toBe(LINES);

    const whole = `etl_agg_whole_${process.pid}`;
    const killed = `etl_agg_killed_${process.pid}`;
    schemas.push(whole, killed);
    const wholeDir = join(dir, 'whole');
    const killedDir = join(dir, 'killed');
    await mkdir(wholeDir, { recursive: true });
    await mkdir(killedDir, { recursive: true });

    const uninterrupted = apply(await pipelineFile(wholeDir, log, whole));
    expect(await uninterrupted.exited, uninterrupted.stderr()).toBe(0);

    const pipeline = await pipelineFile(killedDir, log, killed);
    const stateFile = join(killedDir, '.etl', 'state', 'rollup_kill.json');
    const random = prng(11);
    let kills = 0;
    let midLoad = 0;
    let complete = false;
    while (kills < 20) {
      const started = Date.now() - 1;
      const run = apply(pipeline);
      let done = false;
      void run.exited.then(() => {
        done = true;
      });
      if (complete) await sleep(Math.floor(random() * 400));
      else {
        await firstCheckpoint(stateFile, started, () => done);
        await sleep(Math.floor(random() * 60));
      }
      if (done) {
        expect(await run.exited, run.stderr()).toBe(0);
        complete = true;
        continue;
      }
      run.child.kill('SIGKILL');
      await run.exited;
      kills++;
      if (!complete) midLoad++;
    }
    const last = apply(pipeline);
    expect(await last.exited, last.stderr()).toBe(0);
    expect(midLoad).toBeGreaterThanOrEqual(10);

    const [totals] = await serverQuery(
      `SELECT sum(requests)::int AS requests, sum(bytes_sum)::bigint::text AS bytes, count(*)::int AS rows
         FROM "${killed}".per_minute`,
    );
    expect(totals).toMatchObject({ requests: LINES, bytes: String(bytes) });
    expect(totals?.rows).toBeGreaterThan(100);
    const expected = await table(whole);
    const got = await table(killed);
    expect(got.length).toBe(expected.length);
    expect(got).toEqual(expected);
  });
});
