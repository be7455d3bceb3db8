/**
 * JetStream → parse → PostgreSQL through the CLI, against the real servers: every published line lands once,
 * messages are acknowledged only after the checkpoint committed, and a process killed before its checkpoint
 * leaves its messages to be delivered again, stored once thanks to the sequence column's unique key.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtl } from '../../../test/support/cli.ts';
import { accessLines, NATS_URL, ThrowawayStream } from '../../../test/support/nats.ts';

const PG_URL = process.env.ETL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const cleanups: Array<() => Promise<void> | void> = [];
let db: pg.Client;

beforeAll(async () => {
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await db.end();
});

interface Setup {
  readonly stream: ThrowawayStream;
  readonly schema: string;
  readonly pipeline: string;
}

async function setup(settings: string, ackWaitSeconds = 30): Promise<Setup> {
  const stream = await ThrowawayStream.create('E2E');
  const dir = mkdtempSync(join(tmpdir(), 'etl-nats-'));
  const schema = `nats_${stream.name.toLowerCase()}`;
  cleanups.push(
    () => stream.drop(),
    () => rmSync(dir, { recursive: true, force: true }),
    async () => {
      await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    },
  );
  const pipeline = join(dir, 'pipeline.yaml');
  writeFileSync(
    pipeline,
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: nats-e2e }
spec:
  settings: { data_dir: ${join(dir, '.etl')}, ${settings} }
  sources:
    queue:
      type: nats
      servers: [${NATS_URL}]
      stream: ${stream.name}
      consumer: loader
      create_consumer: true
      ack_wait_seconds: ${ackWaitSeconds}
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
  return { stream, schema, pipeline };
}

async function rows(schema: string): Promise<{ total: number; distinct: number; redelivered: number }> {
  const exists = await db.query(`SELECT to_regclass('${schema}.access_logs') AS t`);
  if (exists.rows[0].t === null) return { total: 0, distinct: 0, redelivered: 0 };
  const result = await db.query(
    `SELECT count(*)::int AS total, count(DISTINCT path || '?' || query)::int AS distinct,
            count(*) FILTER (WHERE nats_deliveries > 1)::int AS redelivered
       FROM ${schema}.access_logs`,
  );
  return result.rows[0] as { total: number; distinct: number; redelivered: number };
}

/** Polls `check` until it holds (the condition is the event waited for; the test timeout bounds it). */
async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 50));
}

describe('nats source → parse → postgres', () => {
  it('stores every published line once and acknowledges them all after the commit, then stops on SIGINT', async () => {
    const { stream, schema, pipeline } = await setup('checkpoint_interval_seconds: 0.2, batch_max_records: 256');
    const lines = accessLines(3000);
    await stream.publish(lines);
    const run = startEtl(['apply', '--no-progress', pipeline]);
    await until(async () => (await rows(schema)).total >= lines.length);
    // Acks follow the commit that made the rows visible.
    await until(async () => (await stream.consumer('loader')).ackPending === 0);
    run.child.kill('SIGINT');
    const result = await run.done;
    expect(result.code, result.stderr).toBe(0);
    expect(await rows(schema)).toEqual({ total: lines.length, distinct: lines.length, redelivered: 0 });
    const consumer = await stream.consumer('loader');
    expect(consumer).toMatchObject({ ackPending: 0, pending: 0 });
    // More lines while it is down are read by the next run, from the broker's ack floor.
    await stream.publish(accessLines(500, 3000));
    const again = startEtl(['apply', '--no-progress', pipeline]);
    await until(async () => (await rows(schema)).total >= 3500);
    await until(async () => (await stream.consumer('loader')).ackPending === 0);
    again.child.kill('SIGINT');
    expect((await again.done).code).toBe(0);
    expect(await rows(schema)).toEqual({ total: 3500, distinct: 3500, redelivered: 0 });
  });

  it('does not acknowledge before the checkpoint: a process killed before it leaves every message to be redelivered, stored once', async () => {
    // No checkpoint during the first run: the rows sit in the open transaction, the messages unacknowledged.
    const { stream, schema, pipeline } = await setup('checkpoint_interval_seconds: 3600, batch_max_records: 100', 2);
    const lines = accessLines(1000);
    await stream.publish(lines);
    const first = startEtl(['apply', '--no-progress', pipeline]);
    await until(async () => (await stream.consumer('loader')).ackPending === lines.length);
    // Held past twice ack_wait (2 s) without redelivery: the source keeps them in progress while it waits.
    const heldSince = Date.now();
    await until(async () => Date.now() - heldSince > 4500);
    expect((await stream.consumer('loader')).redelivered).toBe(0);
    first.child.kill('SIGKILL');
    await first.done;
    expect((await rows(schema)).total).toBe(0);
    expect((await stream.consumer('loader')).ackPending).toBe(lines.length);
    // The next run (the same process or another) gets them again after ack_wait and stores each once.
    writeFileSync(pipeline, (await import('node:fs')).readFileSync(pipeline, 'utf8').replace('3600', '0.2'));
    const second = startEtl(['apply', '--no-progress', pipeline]);
    await until(async () => (await rows(schema)).total >= lines.length);
    await until(async () => (await stream.consumer('loader')).ackPending === 0);
    second.child.kill('SIGINT');
    const result = await second.done;
    expect(result.code, result.stderr).toBe(0);
    const stored = await rows(schema);
    expect(stored).toMatchObject({ total: lines.length, distinct: lines.length });
    expect(stored.redelivered).toBe(lines.length);
    expect(await stream.consumer('loader')).toMatchObject({ ackPending: 0, pending: 0 });
  });
});
