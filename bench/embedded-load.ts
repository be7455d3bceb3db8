/**
 * Embedded database load cost: `node bench/embedded-load.ts [--rows N] [--rounds N]`.
 *
 * Loads N pre-made access records (times to the second, as access logs have them) through the postgres sink into the embedded database (the default table:
 * partitioned by day, BRIN on the time column), each round into a fresh data directory, and reports per
 * 10k rows the CPU time of the embedded database's thread (from /proc, by thread name) and of this thread
 * (building and encoding the rows), and the load's rate. CPU time, unlike a rate, holds up on a shared
 * machine. Linux only (/proc). Prints `name: value unit` lines.
 */
import { readdir, readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { OperatorContext, SinkWriteContext } from '../engine/operator.ts';
import { THREAD_NAME } from '../operators/sinks/postgres/pglite-driver.ts';
import { createPostgresSink } from '../operators/sinks/postgres/postgres.ts';
import { makeBatch } from './access-records.ts';
import { benchContext } from './_context.ts';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '200000' },
    rounds: { type: 'string', default: '3' },
  },
});
const ROWS = Number(values.rows);
const ROUNDS = Math.max(1, Number(values.rounds));
const BATCH = 1000;
/** A checkpoint every this many batches, as a file source's snapshots come. */
const COMMIT_EVERY = 100;
/** Clock ticks per second of /proc's utime and stime (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

const deadLetters: SinkWriteContext = {
  deadLetter(_record, reason) {
    throw new Error(`unexpected dead letter: ${reason}`);
  },
};

function context(dataDir: string): OperatorContext {
  return benchContext('store', { dataDir });
}

/** CPU milliseconds (user + system) of this process's threads named `name`, summed. */
async function threadCpuMs(name: string): Promise<number> {
  let ticks = 0;
  for (const tid of await readdir('/proc/self/task')) {
    const stat = await readFile(`/proc/self/task/${tid}/stat`, 'utf8').catch(() => '');
    // Fields after the name in parentheses: utime and stime are the 12th and 13th.
    const close = stat.lastIndexOf(')');
    if (close === -1 || stat.slice(stat.indexOf('(') + 1, close) !== name) continue;
    const fields = stat.slice(close + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return (ticks * 1000) / TICKS_PER_SECOND;
}

interface Round {
  readonly seconds: number;
  readonly databaseMs: number;
  readonly mainMs: number;
}

async function round(work: string, index: number): Promise<Round> {
  const dataDir = join(work, `round${index}`);
  const sink = createPostgresSink(
    {
      schema: 'public',
      table: 'access_logs',
      record_schema: 'access',
      copy_format: 'auto',
      columns: {},
      origin_columns: {},
      extra_column: 'extra',
      time_column: 'timestamp',
      partition: 'day',
      partition_premake: 1,
      future_partition_limit_hours: 48,
      past_partition_limit_days: 3660,
      indexes: [],
      on_conflict: 'ignore',
      pool_max_connections: 2,
      max_uncommitted_bytes: 32 * 1024 * 1024,
      connect_timeout_seconds: 10,
      reconnect_initial_backoff_ms: 100,
      reconnect_max_backoff_ms: 5000,
      wait_for_server_seconds: 0,
    },
    context(dataDir),
    { env: {} },
  );
  await sink.open?.();
  const baseMs = Date.now() - 3_600_000;
  // The thread's CPU from here on: opening (unpacking the template, starting PostgreSQL) is not the load.
  const database0 = await threadCpuMs(THREAD_NAME);
  const main0 = process.threadCpuUsage();
  const started = performance.now();
  let snapshot = 0;
  for (let b = 0; b * BATCH < ROWS; b++) {
    await sink.write(makeBatch(b * BATCH, Math.min(BATCH, ROWS - b * BATCH), baseMs, true), deadLetters);
    if ((b + 1) % COMMIT_EVERY === 0) await sink.commit?.({ id: ++snapshot, positions: { batch: b } });
  }
  await sink.commit?.({ id: ++snapshot, positions: { end: true } });
  const seconds = (performance.now() - started) / 1000;
  const databaseMs = (await threadCpuMs(THREAD_NAME)) - database0;
  const main = process.threadCpuUsage(main0);
  await sink.close?.();
  await rm(dataDir, { recursive: true, force: true });
  return { seconds, databaseMs, mainMs: (main.user + main.system) / 1000 };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

const work = await mkdtemp(join(tmpdir(), 'etl-bench-embedded-'));
try {
  const rounds: Round[] = [];
  for (let i = 1; i <= ROUNDS; i++) {
    const r = await round(work, i);
    rounds.push(r);
    const per10k = 10_000 / ROWS;
    console.log(
      `# round ${i}: ${(ROWS / r.seconds).toFixed(0)} rows/s, database thread ${(r.databaseMs * per10k).toFixed(0)} ms ` +
        `and main thread ${(r.mainMs * per10k).toFixed(0)} ms CPU per 10k rows`,
    );
  }
  const per10k = (ms: number) => ((ms * 10_000) / ROWS).toFixed(0);
  console.log(`embedded_load_rows: ${ROWS} rows`);
  console.log(`embedded_load_rate: ${median(rounds.map((r) => ROWS / r.seconds)).toFixed(0)} rows/s`);
  console.log(`embedded_load_database_cpu: ${per10k(median(rounds.map((r) => r.databaseMs)))} ms/10k rows`);
  console.log(`embedded_load_main_cpu: ${per10k(median(rounds.map((r) => r.mainMs)))} ms/10k rows`);
  const status = await readFile('/proc/self/status', 'utf8');
  console.log(`embedded_load_peak_rss: ${Math.round(Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024)} MiB`);
} finally {
  await rm(work, { recursive: true, force: true });
}
