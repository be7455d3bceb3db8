/**
 * JetStream → parse → PostgreSQL with one and with three `etl apply` processes sharing one durable consumer.
 *
 * A throwaway stream is filled with generated access-log lines once; each case gets a fresh consumer (delivering
 * from the first message) and a fresh PostgreSQL schema, starts its processes and times from the first message
 * delivered until the consumer has every message acknowledged (each one's row committed). Peak RSS and CPU time
 * are per process (/proc: VmHWM, utime + stime, read just before the process is stopped). Needs nats-server with JetStream (ETL_BENCH_NATS_URL, default nats://127.0.0.1:4222)
 * and PostgreSQL (ETL_BENCH_PG_URL, else ETL_TEST_PG_URL, else postgres://postgres@127.0.0.1:5432/test).
 * Usage: node bench/nats.ts [--lines N] [--instances 1,3] [--rounds N]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AckPolicy, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { createLineMaker } from '../operators/sources/generator/lines.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const lines = Number(arg('lines') ?? 200_000);
const instances = (arg('instances') ?? '1,3').split(',').map(Number);
const rounds = Number(arg('rounds') ?? 1);
const natsUrl = process.env.ETL_BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';
const pgUrl = process.env.ETL_BENCH_PG_URL ?? process.env.ETL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const etlBin = fileURLToPath(new URL('../bin/etl.js', import.meta.url));

const nc = await connect({ servers: natsUrl });
const jsm = await jetstreamManager(nc);
const stream = `BENCH_${randomBytes(4).toString('hex').toUpperCase()}`;
const subject = `bench.${stream}.access`;
await jsm.streams.add({ name: stream, subjects: [`bench.${stream}.>`] });
const db = new pg.Client({ connectionString: pgUrl });
await db.connect();
const dir = mkdtempSync(join(tmpdir(), 'etl-bench-nats-'));

try {
  await fill();
  for (let round = 0; round < rounds; round++) {
    for (const n of instances) console.log(JSON.stringify(await measure(n, round)));
  }
} finally {
  await jsm.streams.delete(stream).catch(() => {});
  await nc.close();
  await db.end();
  rmSync(dir, { recursive: true, force: true });
}

/** Publishes the lines (core publishes, flushed per window: filling is not what is measured). */
async function fill(): Promise<void> {
  const encoder = new TextEncoder();
  const maker = createLineMaker({ seed: 7, format: 'apache_combined', malformed_ratio: 0 });
  for (let sent = 1; sent <= lines; sent++) {
    nc.publish(subject, encoder.encode(maker.next()));
    if (sent % 5000 === 0) await nc.flush();
  }
  await nc.flush();
  while ((await jsm.streams.info(stream)).state.messages < lines) await sleep(100);
}

async function measure(count: number, round: number) {
  const consumer = `bench_${count}_${round}`;
  const schema = `bench_nats_${count}_${round}_${process.pid}`;
  await jsm.consumers.add(stream, {
    durable_name: consumer,
    ack_policy: AckPolicy.Explicit,
    ack_wait: 30e9,
    max_ack_pending: 200_000,
  });
  const pipeline = join(dir, `${consumer}.yaml`);
  writeFileSync(
    pipeline,
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: "bench-\${ETL_INSTANCE}" }
spec:
  settings: { data_dir: "${dir}/${consumer}-\${ETL_INSTANCE}" }
  sources:
    queue: { type: nats, servers: [${natsUrl}], stream: ${stream}, consumer: ${consumer} }
  operators:
    parsed: { type: parse, inputs: [queue], format: combined }
  sinks:
    store:
      type: postgres
      inputs: [parsed]
      url: ${pgUrl}
      schema: ${schema}
      table: access_logs
      partition: none
      origin_columns: { nats_sequence: sequence }
      unique_key: [nats_sequence]
`,
  );
  const processes = Array.from({ length: count }, (_, i) => {
    const child = spawn(process.execPath, [etlBin, 'apply', '--no-progress', pipeline], {
      env: { ...process.env, ETL_INSTANCE: String(i), ETL_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const done = new Promise<number | null>((resolve) => child.on('close', resolve));
    return { child, done, stderr: () => stderr };
  });
  const started = performance.now();
  let first = 0;
  while (true) {
    const info = await jsm.consumers.info(stream, consumer);
    if (first === 0 && info.delivered.stream_seq > 0) first = performance.now();
    if (info.num_pending === 0 && info.num_ack_pending === 0 && info.ack_floor.stream_seq >= lines) break;
    if (processes.some((p) => p.child.exitCode !== null)) {
      throw new Error(`an etl process ended early: ${processes.map((p) => p.stderr()).join('\n')}`);
    }
    await sleep(50);
  }
  const finished = performance.now();
  // Peak RSS (VmHWM) and CPU time of each process, read before it is stopped.
  const perProcess = processes.map((p) => usage(p.child.pid as number));
  for (const p of processes) p.child.kill('SIGINT');
  await Promise.all(processes.map((p) => p.done));
  const stored = (await db.query(`SELECT count(*)::int AS n FROM ${schema}.access_logs`)).rows[0].n as number;
  await db.query(`DROP SCHEMA ${schema} CASCADE`);
  await jsm.consumers.delete(stream, consumer);
  const seconds = (finished - first) / 1000;
  return {
    instances: count,
    lines,
    stored,
    lines_per_s: Math.round(lines / seconds),
    with_startup_lines_per_s: Math.round(lines / ((finished - started) / 1000)),
    seconds: Number(seconds.toFixed(1)),
    processes: perProcess,
    load_average: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
  };
}

function usage(pid: number): { peak_rss_mib: number; cpu_s: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const hwmKb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  // utime and stime are fields 14 and 15 of /proc/<pid>/stat, in clock ticks (100 per second on Linux).
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { peak_rss_mib: Math.round(hwmKb / 1024), cpu_s: Number((ticks / 100).toFixed(1)) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
