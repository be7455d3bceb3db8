/**
 * PostgreSQL load benchmark:
 * `node bench/postgres.ts [--lines N] [--embedded-lines N] [--rounds N] [--embedded-only] [--server-only]
 * [--copy-formats a,b] [--baseline <other checkout>/bin/etl.js]`.
 *
 * Measures, in one run against the server at ETL_BENCH_PG_URL (default the test server):
 * - end to end: `etl apply` of file → parse → postgres over N generated nginx lines, lines/s and the
 *   child's peak RSS; and `psql \copy` of the same rows as CSV into an identical table (the reference
 *   rate), in turn, --rounds times: medians, and the range of the per-round ratio; with --copy-formats
 *   (e.g. `text,binary`), the etl run once per `copy_format` in each round, in alternating order, each
 *   reported on its own (`postgres_e2e_<format>_rate`) with the median of its per-round ratio to the first;
 * - server-side COPY of the same rows in text and in binary format;
 * - the sink alone through its contract (pre-parsed records);
 * - end to end on the embedded database, each round into a fresh data directory (a first run), --rounds
 *   times: the median rate, the highest peak RSS and the median CPU time of the process and of its
 *   database thread (which holds up on a loaded machine where rates do not). With `--baseline
 *   <other checkout>/bin/etl.js`, that `etl` runs too, in turn with this one (order alternating by round),
 *   reported as `postgres_embedded_baseline_*`. `--embedded-only` runs just this part (no server).
 * Every `etl` child runs with the V8 flags the `etl` command starts node with (bin/runtime.js NODE_FLAGS), as a
 * user's run does (`node bin/etl.js` alone runs without them: a young generation up to 64 MB a semi-space).
 * Prints `name: value unit` lines.
 */
import { NODE_FLAGS } from '../bin/runtime.js';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import pg from 'pg';
import type { OperatorContext, Sink, SinkWriteContext } from '../engine/operator.ts';
import { createPostgresSink } from '../operators/sinks/postgres/postgres.ts';
import type { PostgresSinkOptions } from '../operators/sinks/postgres/schema.ts';
import { writeLogFile } from '../operators/sources/generator/write-file.ts';
import { makeBatch } from './access-records.ts';
import { benchContext } from './_context.ts';

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    lines: { type: 'string', default: '1000000' },
    'embedded-lines': { type: 'string' },
    rounds: { type: 'string', default: '3' },
    'embedded-only': { type: 'boolean', default: false },
    'copy-formats': { type: 'string', default: 'text' },
    'server-only': { type: 'boolean', default: false },
    baseline: { type: 'string' },
  },
});
const LINES = Number(values.lines);
const EMBEDDED_LINES = Number(values['embedded-lines'] ?? Math.min(LINES, 200_000));
/** End to end and `psql \copy` in turn, this many times each. */
const ROUNDS = Math.max(1, Number(values.rounds));
/** The sink's copy_format values the end-to-end rounds run, each in every round. */
const COPY_FORMATS = (values['copy-formats'] ?? 'text').split(',');
const URL = process.env.ETL_BENCH_PG_URL ?? process.env.ETL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const BATCH = 1000;
const COMMIT_EVERY = 100;
const SCHEMA = `etl_bench_${randomBytes(4).toString('hex')}`;
const ETL = resolve(import.meta.dirname, '../bin/etl.js');
/** Linux's USER_HZ: the unit of CPU times in /proc/<pid>/stat. */
const CLOCK_TICKS = 100;

function writeLog(path: string, lines: number): Promise<void> {
  return writeLogFile(path, lines, { format: 'nginx_combined', seed: 1, malformed_ratio: 0 });
}

/** CPU seconds (user + system) a process has used so far, from /proc; 0 once it is gone. */
async function cpuSeconds(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** CPU seconds of one `etl apply`: its process, and the server backends of its sink (robust under load). */
interface CpuUse {
  etl: number;
  server: number;
  /** The embedded database's thread (THREAD_NAME in pglite-driver.ts). */
  embedded: number;
}

/** The embedded database thread's name, as pglite-driver.ts sets it. */
const EMBEDDED_THREAD = 'etl-pglite';

/** CPU seconds of `pid`'s threads named `name`, from /proc; 0 once they are gone. */
async function threadCpuSeconds(pid: number, name: string): Promise<number> {
  let ticks = 0;
  for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => '');
    const close = stat.lastIndexOf(')');
    if (close === -1 || stat.slice(stat.indexOf('(') + 1, close) !== name) continue;
    const fields = stat.slice(close + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / CLOCK_TICKS;
}

/**
 * Runs `etl apply` on file → parse → postgres; seconds and the child's peak RSS (MiB). With `client`, `cpu`
 * gets the CPU time of the process and of its sink's backends (found by application_name), polled while it runs.
 */
async function applyPipeline(
  work: string,
  name: string,
  log: string,
  sink: string,
  client?: pg.Client,
  cpu?: CpuUse,
  etl = ETL,
): Promise<[number, number]> {
  const file = join(work, `${name}.yaml`);
  await writeFile(
    file,
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: ${name} }
spec:
  settings: { data_dir: ${join(work, name)} }
  sources:
    logs: { type: file, paths: ["${log}"] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
  sinks:
    store: { type: postgres, inputs: [parsed], ${sink} }
`,
  );
  const started = performance.now();
  const child = spawn(process.execPath, [...NODE_FLAGS, etl, 'apply', '--no-progress', '--log-level', 'warn', file], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, DATABASE_URL: '' },
  });
  let peak = 0;
  const backends = new Map<number, number>();
  let looking = false;
  const poll = setInterval(() => {
    readFile(`/proc/${child.pid}/status`, 'utf8').then(
      (status) => {
        peak = Math.max(peak, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024);
      },
      () => {},
    );
    if (!cpu || looking) return;
    looking = true;
    (async () => {
      cpu.etl = Math.max(cpu.etl, await cpuSeconds(child.pid as number));
      cpu.embedded = Math.max(cpu.embedded, await threadCpuSeconds(child.pid as number, EMBEDDED_THREAD));
      if (!client) return;
      const found = await client.query('SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1', [
        `etl ${name}/%`,
      ]);
      for (const { pid } of found.rows as Array<{ pid: number }>) backends.set(pid, backends.get(pid) ?? 0);
      for (const [pid, seen] of backends) backends.set(pid, Math.max(seen, await cpuSeconds(pid)));
    })()
      .catch(() => {})
      .finally(() => {
        looking = false;
      });
  }, 20);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearInterval(poll);
  if (cpu) cpu.server = [...backends.values()].reduce((a, b) => a + b, 0);
  if (code !== 0) throw new Error(`etl apply exited with ${code}`);
  return [(performance.now() - started) / 1000, Math.round(peak)];
}

function context(dataDir: string): OperatorContext {
  return benchContext('store', { dataDir });
}

const deadLetters: SinkWriteContext = {
  deadLetter(_record, reason) {
    throw new Error(`unexpected dead letter: ${reason}`);
  },
};

function options(patch: Partial<PostgresSinkOptions>): PostgresSinkOptions {
  return {
    schema: SCHEMA,
    table: 'access_logs',
    record_schema: 'access',
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
    copy_format: 'text',
    max_uncommitted_bytes: 64 * 1024 * 1024,
    connect_timeout_seconds: 10,
    reconnect_initial_backoff_ms: 100,
    reconnect_max_backoff_ms: 5000,
    wait_for_server_seconds: 0,
    ...patch,
  };
}

/** Loads `lines` records through the sink; seconds spent. */
async function loadThroughSink(sink: Sink, lines: number, baseMs: number): Promise<number> {
  await sink.open?.();
  const started = performance.now();
  let snapshot = 0;
  for (let b = 0; b * BATCH < lines; b++) {
    await sink.write(makeBatch(b * BATCH, Math.min(BATCH, lines - b * BATCH), baseMs), deadLetters);
    if ((b + 1) % COMMIT_EVERY === 0) await sink.commit?.({ id: ++snapshot, positions: { batch: b } });
  }
  await sink.commit?.({ id: ++snapshot, positions: { end: true } });
  const seconds = (performance.now() - started) / 1000;
  await sink.close?.();
  return seconds;
}

/** Writes dirty pages out, so that the writeback of files just made does not slow the step timed next. */
async function settle(): Promise<void> {
  await run('sync');
}

async function psql(command: string): Promise<number> {
  const started = performance.now();
  await run('psql', [URL, '-v', 'ON_ERROR_STOP=1', '-q', '-c', command], { maxBuffer: 1 << 20 });
  return (performance.now() - started) / 1000;
}

function report(name: string, value: number | string, unit: string): void {
  const shown = typeof value === 'string' || Number.isInteger(value) ? value : value.toFixed(1);
  console.log(`${name}: ${shown} ${unit}`);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

const pct = (ratio: number) => (100 * ratio).toFixed(1);

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'etl-bench-pg-'));
  try {
    if (!values['embedded-only']) await serverBench(work);
    if (!values['server-only']) await embeddedBench(work);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** End to end on the embedded database: a fresh data directory each round, as a newcomer's first run. */
async function embeddedBench(work: string): Promise<void> {
  const log = join(work, 'embedded.log');
  await writeLog(log, EMBEDDED_LINES);
  const runs = [{ prefix: 'postgres_embedded', etl: ETL }];
  if (values.baseline) runs.push({ prefix: 'postgres_embedded_baseline', etl: resolve(values.baseline) });
  const figures = new Map(
    runs.map((r) => [
      r.prefix,
      { rates: [] as number[], peaks: [] as number[], queries: [] as number[], cpu: [] as CpuUse[] },
    ]),
  );
  for (let round = 1; round <= ROUNDS; round++) {
    // In turn, the order alternating by round, so that load that comes and goes falls on each alike.
    for (const { prefix, etl } of round % 2 === 1 ? runs : [...runs].reverse()) {
      const name = `${prefix.replace('postgres_', '')}${round}`;
      const seen = figures.get(prefix) as { rates: number[]; peaks: number[]; queries: number[]; cpu: CpuUse[] };
      await settle();
      const cpu: CpuUse = { etl: 0, server: 0, embedded: 0 };
      const [seconds, rss] = await applyPipeline(work, name, log, 'table: access_logs', undefined, cpu, etl);
      // `etl query` on the database just made: the rows are all there, and how long a query takes.
      const started = performance.now();
      const { stdout } = await run(
        process.execPath,
        [
          etl,
          'query',
          '--format',
          'csv',
          '--pipeline',
          join(work, `${name}.yaml`),
          'SELECT count(*) AS n FROM access_logs',
        ],
        { env: { ...process.env, DATABASE_URL: '' } },
      );
      const querySeconds = (performance.now() - started) / 1000;
      if (stdout.trim() !== `n\n${EMBEDDED_LINES}`) throw new Error(`embedded table holds ${stdout.trim()} rows`);
      seen.rates.push(EMBEDDED_LINES / seconds);
      seen.peaks.push(rss);
      seen.queries.push(querySeconds);
      seen.cpu.push(cpu);
      console.log(
        `# ${name}: etl apply ${seconds.toFixed(2)} s (${rss} MiB; CPU ${cpu.etl.toFixed(2)} s, database thread ` +
          `${cpu.embedded.toFixed(2)} s), etl query ${querySeconds.toFixed(2)} s`,
      );
      await rm(join(work, name), { recursive: true, force: true });
    }
  }
  report('postgres_embedded_lines', EMBEDDED_LINES, 'lines');
  for (const [prefix, { rates, peaks, queries, cpu }] of figures) {
    report(`${prefix}_e2e_rate`, Math.round(median(rates)), 'lines/s');
    report(
      `${prefix}_e2e_rate_range`,
      `${Math.round(Math.min(...rates))}-${Math.round(Math.max(...rates))}`,
      'lines/s',
    );
    report(`${prefix}_peak_rss`, Math.max(...peaks), 'MiB');
    report(`${prefix}_query_seconds`, median(queries), 's');
    report(`${prefix}_cpu_seconds`, median(cpu.map((c) => c.etl)), 's');
    report(`${prefix}_database_thread_cpu_seconds`, median(cpu.map((c) => c.embedded)), 's');
  }
}

async function serverBench(work: string): Promise<void> {
  const client = new pg.Client({ connectionString: URL });
  await client.connect();
  // Rows one hour back, spread over ~3 hours at 1M lines: one or two day partitions, as a real day's load.
  const baseMs = Date.now() - 3_600_000;
  try {
    report('postgres_bench_lines', LINES, 'lines');
    const log = join(work, 'access.log');
    await writeLog(log, LINES);

    // End to end through the CLI (process start, file read, parse, encode, COPY, checkpoints), then the
    // reference: the same rows as CSV, `psql \copy` into an identical table (same columns, partitions
    // and BRIN index). In turn, ROUNDS times: this machine is shared, the medians are what to quote.
    const e2eRates: number[] = [];
    const e2eRss: number[] = [];
    const formatRates = new Map<string, number[]>(COPY_FORMATS.map((f) => [f, []]));
    const formatRatios = new Map<string, number[]>(COPY_FORMATS.map((f) => [f, []]));
    const formatCpu = new Map<string, CpuUse[]>(COPY_FORMATS.map((f) => [f, []]));
    const copyRates: number[] = [];
    const ratios: number[] = [];
    let cols = '';
    const csv = join(work, 'rows.csv');
    for (let round = 1; round <= ROUNDS; round++) {
      // Formats in alternating order from round to round, so that load that comes and goes falls on each alike.
      const order = round % 2 === 1 ? COPY_FORMATS : [...COPY_FORMATS].reverse();
      let seconds = 0;
      let rss = 0;
      let peak = 0;
      const roundSeconds = new Map<string, number>();
      for (const [i, format] of order.entries()) {
        if (round > 1 || i > 0) {
          await client.query(`DROP TABLE ${SCHEMA}.access_logs CASCADE; DELETE FROM ${SCHEMA}.etl_checkpoints`);
        }
        await settle();
        const cpu: CpuUse = { etl: 0, server: 0, embedded: 0 };
        [seconds, rss] = await applyPipeline(
          work,
          `e2e${round}${format}`,
          log,
          `url: "${URL}", schema: ${SCHEMA}, copy_format: ${format}`,
          client,
          cpu,
        );
        formatCpu.get(format)?.push(cpu);
        const [{ n: loaded }] = (await client.query(`SELECT count(*)::int AS n FROM ${SCHEMA}.access_logs`)).rows;
        if (loaded !== LINES) throw new Error(`loaded ${loaded} rows of ${LINES}`);
        roundSeconds.set(format, seconds);
        peak = Math.max(peak, rss);
        formatRates.get(format)?.push(LINES / seconds);
        console.log(
          `# round ${round}: etl apply copy_format ${format} ${seconds.toFixed(2)} s (${rss} MiB), CPU ` +
            `etl ${cpu.etl.toFixed(2)} s, server backend ${cpu.server.toFixed(2)} s`,
        );
      }
      const first = roundSeconds.get(COPY_FORMATS[0] as string) as number;
      for (const format of COPY_FORMATS) formatRatios.get(format)?.push(first / (roundSeconds.get(format) as number));
      // The figures below are of the first format.
      seconds = first;
      if (round === 1) {
        await client.query(`
          CREATE TABLE ${SCHEMA}.copy_ref (LIKE ${SCHEMA}.access_logs INCLUDING DEFAULTS) PARTITION BY RANGE ("timestamp");
          DO $$ DECLARE r record; BEGIN
            FOR r IN SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
                       FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                      WHERE i.inhparent = '${SCHEMA}.access_logs'::regclass LOOP
              EXECUTE format('CREATE TABLE ${SCHEMA}.%I PARTITION OF ${SCHEMA}.copy_ref %s', 'ref_' || r.relname, r.bound);
            END LOOP;
          END $$;
          CREATE INDEX ON ${SCHEMA}.copy_ref USING brin ("timestamp");`);
        cols = (
          await client.query(
            `SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) AS cols FROM pg_attribute
              WHERE attrelid = '${SCHEMA}.access_logs'::regclass AND attnum > 0 AND NOT attisdropped`,
          )
        ).rows[0].cols as string;
        await psql(`\\copy (SELECT ${cols} FROM ${SCHEMA}.access_logs) TO '${csv}' CSV`);
      }
      await client.query(`TRUNCATE ${SCHEMA}.copy_ref`);
      await settle();
      const copySeconds = await psql(`\\copy ${SCHEMA}.copy_ref (${cols}) FROM '${csv}' CSV`);
      e2eRates.push(LINES / seconds);
      e2eRss.push(peak);
      copyRates.push(LINES / copySeconds);
      ratios.push(seconds === 0 ? 0 : copySeconds / seconds);
      console.log(
        `# round ${round}: etl apply ${seconds.toFixed(2)} s (${rss} MiB), psql \\copy ${copySeconds.toFixed(2)} s, ` +
          `${pct(copySeconds / seconds)} %`,
      );
    }
    if (COPY_FORMATS.length > 1) {
      for (const format of COPY_FORMATS) {
        const rates = formatRates.get(format) as number[];
        report(`postgres_e2e_${format}_rate`, Math.round(median(rates)), 'lines/s');
        report(
          `postgres_e2e_${format}_rate_range`,
          `${Math.round(Math.min(...rates))}-${Math.round(Math.max(...rates))}`,
          'lines/s',
        );
        const ratio = median(formatRatios.get(format) as number[]).toFixed(3);
        const cpus = formatCpu.get(format) as CpuUse[];
        const perRow = (pick: (c: CpuUse) => number) => (1e6 * median(cpus.map(pick))) / LINES;
        report(
          `postgres_e2e_${format}_etl_cpu_per_row`,
          perRow((c) => c.etl),
          'µs',
        );
        report(
          `postgres_e2e_${format}_server_cpu_per_row`,
          perRow((c) => c.server),
          'µs',
        );
        report(
          `postgres_e2e_${format}_total_cpu_per_row`,
          perRow((c) => c.etl + c.server),
          'µs',
        );
        report(`postgres_e2e_${format}_over_${COPY_FORMATS[0]}`, ratio, 'x (median of per-round ratios)');
      }
    }
    report('postgres_e2e_rate', Math.round(median(e2eRates)), 'lines/s');
    report('postgres_e2e_seconds', LINES / median(e2eRates), 's');
    report('postgres_e2e_peak_rss', Math.max(...e2eRss), 'MiB');
    report('psql_copy_rate', Math.round(median(copyRates)), 'lines/s');
    report('postgres_e2e_vs_psql_copy', 100 * median(ratios), '%');
    report('postgres_e2e_vs_psql_copy_range', `${pct(Math.min(...ratios))}-${pct(Math.max(...ratios))}`, '%');

    // Text against binary COPY, same rows, same table, server-side ingest.
    for (const format of ['text', 'binary'] as const) {
      const file = join(work, `rows.${format}`);
      await psql(`\\copy (SELECT ${cols} FROM ${SCHEMA}.access_logs) TO '${file}' WITH (FORMAT ${format})`);
      await client.query(`TRUNCATE ${SCHEMA}.copy_ref`);
      await settle();
      const seconds = await psql(`\\copy ${SCHEMA}.copy_ref (${cols}) FROM '${file}' WITH (FORMAT ${format})`);
      report(`copy_${format}_rate`, Math.round(LINES / seconds), 'lines/s');
      report(`copy_${format}_bytes`, (await stat(file)).size, 'bytes');
    }

    // The sink alone: pre-parsed records through the Sink contract, generated in the same loop.
    await settle();
    const sinkSeconds = await loadThroughSink(
      createPostgresSink(options({ url: URL, table: 'sink_only' }), context(work), { env: {} }),
      LINES,
      baseMs,
    );
    report('postgres_sink_only_rate', Math.round(LINES / sinkSeconds), 'lines/s');
  } finally {
    await client.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`).catch(() => {});
    await client.end();
  }
}

await main();
