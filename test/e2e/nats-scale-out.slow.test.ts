/**
 * Scale-out on JetStream: three `etl apply` processes share one durable consumer and load one PostgreSQL table;
 * one of them is killed with SIGKILL mid-run. Its unacknowledged messages go to the two others after ack_wait,
 * and those whose rows it had committed before its acks left come again too and are skipped by the sequence
 * column's unique key: the table ends up with every published line exactly once.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startEtl } from '../support/cli.ts';
import { accessLines, NATS_URL, ThrowawayStream } from '../support/nats.ts';

const PG_URL = process.env.ETL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const LINES = 30_000;

const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 100));
}

function recordsRead(stderr: string): number {
  const match = /records read\s+([\d,]+)/.exec(stderr);
  return match ? Number((match[1] as string).replaceAll(',', '')) : 0;
}

describe('three etl processes on one JetStream consumer', () => {
  it('load every line exactly once into PostgreSQL although one is killed with SIGKILL', async () => {
    const stream = await ThrowawayStream.create('SCALE');
    const db = new pg.Client({ connectionString: PG_URL });
    await db.connect();
    const schema = `scale_${stream.name.toLowerCase()}`;
    const dir = mkdtempSync(join(tmpdir(), 'etl-nats-scale-'));
    cleanups.push(
      () => stream.drop(),
      async () => {
        await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        await db.end();
      },
      () => rmSync(dir, { recursive: true, force: true }),
    );
    // One pipeline file for every instance: each has its own name (its checkpoint row and sink lock in
    // PostgreSQL) and state directory, from the environment.
    const pipeline = join(dir, 'pipeline.yaml');
    writeFileSync(
      pipeline,
      `apiVersion: etl/v1
kind: Pipeline
metadata: { name: "loader-\${ETL_INSTANCE}" }
spec:
  settings: { data_dir: "${dir}/state-\${ETL_INSTANCE}", checkpoint_interval_seconds: 0.5, batch_max_records: 200 }
  sources:
    queue:
      type: nats
      servers: [${NATS_URL}]
      stream: ${stream.name}
      consumer: loaders
      create_consumer: true
      ack_wait_seconds: 2
  operators:
    parsed: { type: parse, inputs: [queue], format: common }
  sinks:
    store:
      type: postgres
      inputs: [parsed]
      url: ${PG_URL}
      schema: ${schema}
      table: access_logs
      partition: none
      origin_columns: { nats_sequence: sequence, nats_deliveries: deliveries }
      unique_key: [nats_sequence]
`,
    );
    // The consumer exists before the three start, so that none races another to create it.
    await stream.jsm.consumers.add(stream.name, {
      durable_name: 'loaders',
      ack_policy: 'explicit' as never,
      ack_wait: 2e9,
      max_ack_pending: 100_000,
    });
    const publishing = stream.publish(accessLines(LINES));
    const runs = ['a', 'b', 'c'].map((instance) =>
      startEtl(['apply', '--no-progress', pipeline], { env: { ETL_INSTANCE: instance } }),
    );
    const stored = async (): Promise<number> => {
      const t = await db.query(`SELECT to_regclass('${schema}.access_logs') AS t`);
      if (t.rows[0].t === null) return 0;
      return (await db.query(`SELECT count(*)::int AS n FROM ${schema}.access_logs`)).rows[0].n as number;
    };
    // Kill one once a third of the lines are stored: it holds messages read and not yet acknowledged.
    await until(async () => (await stored()) >= LINES / 3);
    const victim = runs[0] as (typeof runs)[number];
    victim.child.kill('SIGKILL');
    expect((await victim.done).signal).toBe('SIGKILL');
    await publishing;
    // Every message acknowledged: each one's rows committed before (acks follow the commit).
    await until(async () => {
      const consumer = await stream.consumer('loaders');
      return consumer.ackPending === 0 && consumer.pending === 0;
    });
    for (const run of runs.slice(1)) run.child.kill('SIGINT');
    const results = await Promise.all(runs.slice(1).map((run) => run.done));
    for (const result of results) expect(result.code, result.stderr).toBe(0);

    const counts = await db.query(
      `SELECT count(*)::int AS total, count(DISTINCT nats_sequence)::int AS sequences,
              count(DISTINCT query)::int AS lines,
              count(*) FILTER (WHERE nats_deliveries > 1)::int AS redelivered FROM ${schema}.access_logs`,
    );
    const { redelivered, ...rows } = counts.rows[0] as { redelivered: number };
    expect(rows).toEqual({ total: LINES, sequences: LINES, lines: LINES });
    // Both survivors took a share, and the victim's unacknowledged messages were delivered again.
    for (const result of results) expect(recordsRead(result.stderr)).toBeGreaterThan(0);
    expect(redelivered).toBeGreaterThan(0);
  });
});
