/**
 * The kafka source against a real broker, gated on KAFKA_BROKERS (`docker compose up -d kafka` brings one up at
 * 127.0.0.1:9092): skipped where no broker runs. Two `etl apply` instances in one consumer group load one
 * PostgreSQL table; the second joins mid-run (a rebalance moves partitions to it): every line is stored once, and
 * each partition's position stored with the rows is where its messages end.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startEtl } from '../../../test/support/cli.ts';
import { accessLines } from '../../../test/support/nats.ts';
import { until } from '../../../test/support/until.ts';

const BROKERS = process.env.KAFKA_BROKERS;
const PG_URL = process.env.ETL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const LINES = 6000;

const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

describe.skipIf(BROKERS === undefined)(
  'kafka source against a real broker (needs KAFKA_BROKERS; skipped without)',
  () => {
    it('two instances in one group load every line exactly once into PostgreSQL across a rebalance', async () => {
      const brokers = (BROKERS as string).split(',');
      const kafka = new Kafka({ brokers, clientId: 'etl-test', logLevel: logLevel.NOTHING });
      const topic = `etl-test-${randomBytes(4).toString('hex')}`;
      const admin = kafka.admin();
      await admin.connect();
      cleanups.push(() => admin.disconnect());
      // Four partitions to share; a broker that creates topics on first use makes them with its own default.
      await admin.createTopics({ topics: [{ topic, numPartitions: 4 }] }).catch(() => {});
      const producer = kafka.producer({ allowAutoTopicCreation: true });
      await producer.connect();
      cleanups.push(() => producer.disconnect());
      const lines = accessLines(LINES);
      const produce = async (from: number, to: number) => {
        for (let i = from; i < to; i += 500) {
          await producer.send({ topic, messages: lines.slice(i, Math.min(i + 500, to)).map((value) => ({ value })) });
        }
      };
      await produce(0, LINES / 2);

      const db = new pg.Client({ connectionString: PG_URL });
      await db.connect();
      const schema = `kafka_${topic.slice(-8)}`;
      const dir = mkdtempSync(join(tmpdir(), 'etl-kafka-'));
      cleanups.push(
        async () => {
          await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
          await db.end();
        },
        () => rmSync(dir, { recursive: true, force: true }),
      );
      const pipeline = join(dir, 'pipeline.yaml');
      writeFileSync(
        pipeline,
        `apiVersion: etl/v1
kind: Pipeline
metadata: { name: "loader-\${ETL_INSTANCE}" }
spec:
  settings: { data_dir: "${dir}/state-\${ETL_INSTANCE}", checkpoint_interval_seconds: 0.5, batch_max_records: 200 }
  sources:
    queue: { type: kafka, brokers: [${brokers.join(', ')}], topics: [${topic}], group_id: loaders, session_timeout_seconds: 10 }
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
      origin_columns: { kafka_partition: file, kafka_offset: sequence }
`,
      );
      const stored = async (): Promise<number> => {
        const t = await db.query(`SELECT to_regclass('${schema}.access_logs') AS t`);
        if (t.rows[0].t === null) return 0;
        return (await db.query(`SELECT count(*)::int AS n FROM ${schema}.access_logs`)).rows[0].n as number;
      };
      const a = startEtl(['apply', '--no-progress', pipeline], { env: { ETL_INSTANCE: 'a' } });
      await until(async () => (await stored()) >= LINES / 6, 'a sixth of the lines stored', 120_000);
      // b joins: the group rebalances and some of a's partitions move to b, with a's batches still in flight.
      const b = startEtl(['apply', '--no-progress', pipeline], { env: { ETL_INSTANCE: 'b' } });
      await produce(LINES / 2, LINES);
      const runs = [a, b];
      // An instance fenced off a partition it was committing fails its run without committing, as does one whose
      // group protocol the broker breaks off (librdkafka's mock cluster answers a second member's SyncGroup with a
      // response kafkajs cannot read): a supervisor restarts it, and so does this test; the restart resumes.
      const restarts: string[] = [];
      const watch = (index: number, instance: string) => {
        void runs[index]?.done.then((result) => {
          const why = /claimed by a newer owner|malformed by the client library/.exec(result.stderr);
          if (result.code !== 0 && result.signal === null && why && restarts.length < 6) {
            restarts.push(`${instance}: ${why[0]}`);
            runs[index] = startEtl(['apply', '--no-progress', pipeline], { env: { ETL_INSTANCE: instance } });
            watch(index, instance);
          }
        });
      };
      watch(0, 'a');
      watch(1, 'b');
      await until(async () => (await stored()) >= LINES, 'every line stored', 180_000);
      // Let the last positions commit, then stop both.
      await until(
        async () => {
          const r = await db.query(
            `SELECT coalesce(sum((position #>> '{}')::bigint), 0)::int AS n FROM ${schema}.etl_partition_positions`,
          );
          return r.rows[0].n >= LINES;
        },
        'every position stored',
        60_000,
      );
      for (const run of runs) run.child.kill('SIGINT');
      const results = await Promise.all(runs.map((run) => run.done));
      for (const result of results) expect(result.code, result.stderr).toBe(0);

      const counts = await db.query(
        `SELECT count(*)::int AS total, count(DISTINCT (kafka_partition, kafka_offset))::int AS messages,
              count(DISTINCT query)::int AS lines FROM ${schema}.access_logs`,
      );
      expect(counts.rows[0]).toEqual({ total: LINES, messages: LINES, lines: LINES });
      // Each partition's stored position is one past its last message's offset.
      const positions = await db.query(
        `SELECT p.key, p.epoch::int AS epoch, p.position #>> '{}' AS next, (SELECT max(kafka_offset) + 1 FROM ${schema}.access_logs l
         WHERE 'kafka:' || split_part(p.key, '/', 3) || '/' || split_part(p.key, '/', 4) = l.kafka_partition)::text AS expected
         FROM ${schema}.etl_partition_positions p`,
      );
      for (const row of positions.rows) expect(row.next, row.key).toBe(row.expected);
      // The rebalance moved partitions: some were claimed again, under a newer epoch, and resumed where the rows ended.
      expect(Math.max(...positions.rows.map((row) => Number(row.epoch)))).toBeGreaterThanOrEqual(2);
      if (restarts.length > 0) console.info(`instances restarted: ${restarts.join('; ')}`);
    });
  },
);
