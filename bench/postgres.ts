/**
 * PostgreSQL load benchmark: `node bench/postgres.ts [--lines N] [--embedded-lines N]`.
 *
 * Measures, in one run against the server at ETL_BENCH_PG_URL (default the test server):
 * - the postgres sink through its contract (pre-parsed access records, batches of 1,000, a checkpoint
 *   commit every 100 batches), lines/s and peak RSS;
 * - `psql \copy` of the same rows as CSV into an identical table (the reference rate);
 * - server-side COPY of the same rows in text and in binary format (why the sink uses text);
 * - the sink on the embedded database.
 * Prints `name: value unit` lines.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import pg from 'pg';
import type { OperatorContext, Sink, SinkWriteContext } from '../engine/operator.ts';
import type { EtlRecord } from '../engine/record.ts';
import { createPostgresSink } from '../operators/sinks/postgres/postgres.ts';
import type { PostgresSinkOptions } from '../operators/sinks/postgres/schema.ts';

const run = promisify(execFile);
const { values } = parseArgs({
  options: { lines: { type: 'string', default: '1000000' }, 'embedded-lines': { type: 'string' } },
});
const LINES = Number(values.lines);
const EMBEDDED_LINES = Number(values['embedded-lines'] ?? Math.min(LINES, 200_000));
const URL = process.env.ETL_BENCH_PG_URL ?? process.env.ETL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const BATCH = 1000;
const COMMIT_EVERY = 100;
const SCHEMA = `etl_bench_${randomBytes(4).toString('hex')}`;

const PATHS = ['/', '/index.html', '/api/v1/items', '/static/app.js', '/login', '/search'];
const AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36',
  'curl/8.5.0',
  'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
];
const STATUSES = [200, 200, 200, 304, 404, 500, 301];

/** Access records as `parse` makes them, one batch at a time (never all in memory). */
function makeBatch(start: number, count: number, baseMs: number): EtlRecord[] {
  const out: EtlRecord[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const n = start + i;
    out[i] = {
      client_ip: n % 10 === 0 ? `2001:db8::${(n & 0xffff).toString(16)}` : `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
      ident: null,
      user: null,
      timestamp: new Date(baseMs + n * 10).toISOString(),
      method: n % 9 === 0 ? 'POST' : 'GET',
      path: `${PATHS[n % PATHS.length]}`,
      query: n % 3 === 0 ? `q=${n}` : null,
      protocol: 'HTTP/1.1',
      status: STATUSES[n % STATUSES.length],
      bytes: (n * 37) % 50_000,
      referrer: n % 4 === 0 ? 'https://example.com/' : null,
      user_agent: AGENTS[n % AGENTS.length],
      request_time_ms: (n % 1000) / 10,
      vhost: 'example.com',
      port: 443,
    };
  }
  return out;
}

function context(dataDir: string): OperatorContext {
  const quiet = () => {};
  return {
    pipeline: 'bench',
    id: 'store',
    logger: { debug: quiet, info: quiet, warn: quiet, error: quiet },
    signal: new AbortController().signal,
    dataDir,
    baseDir: dataDir,
    metrics: { counter: () => ({ inc() {} }), gauge: () => ({ set() {} }) },
    requestCheckpoint() {},
  };
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
    extra_column: 'extra',
    time_column: 'timestamp',
    partition: 'day',
    partition_premake: 1,
    future_partition_limit_hours: 48,
    past_partition_limit_days: 3660,
    indexes: [],
    on_conflict: 'ignore',
    pool_max_connections: 2,
    max_uncommitted_bytes: 64 * 1024 * 1024,
    connect_timeout_seconds: 10,
    reconnect_initial_backoff_ms: 100,
    reconnect_max_backoff_ms: 5000,
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

async function psql(command: string): Promise<number> {
  const started = performance.now();
  await run('psql', [URL, '-v', 'ON_ERROR_STOP=1', '-q', '-c', command], { maxBuffer: 1 << 20 });
  return (performance.now() - started) / 1000;
}

function report(name: string, value: number, unit: string): void {
  console.log(`${name}: ${Number.isInteger(value) ? value : value.toFixed(1)} ${unit}`);
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'etl-bench-pg-'));
  const client = new pg.Client({ connectionString: URL });
  await client.connect();
  // Rows one hour back, spread over ~3 hours at 1M lines: one or two day partitions, as a real day's load.
  const baseMs = Date.now() - 3_600_000;
  try {
    report('postgres_bench_lines', LINES, 'lines');
    console.log('postgres_bench_mode: sink alone (pre-parsed records through the Sink contract)');

    const sinkSeconds = await loadThroughSink(createPostgresSink(options({ url: URL }), context(work), { env: {} }), LINES, baseMs);
    report('postgres_sink_rate', Math.round(LINES / sinkSeconds), 'lines/s');
    report('postgres_sink_seconds', sinkSeconds, 's');

    // The reference: the same rows, CSV, `psql \copy` into an identical (partitioned, indexed) table.
    const ref = createPostgresSink(options({ url: URL, table: 'copy_ref' }), context(work), { env: {} });
    await ref.open?.();
    await ref.close?.();
    const cols = (await client.query(
      `SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) AS cols FROM pg_attribute
        WHERE attrelid = '${SCHEMA}.access_logs'::regclass AND attnum > 0 AND NOT attisdropped`,
    )).rows[0].cols as string;
    const csv = join(work, 'rows.csv');
    await psql(`\\copy (SELECT ${cols} FROM ${SCHEMA}.access_logs) TO '${csv}' CSV`);
    report('postgres_csv_bytes', (await stat(csv)).size, 'bytes');
    const copySeconds = await psql(`\\copy ${SCHEMA}.copy_ref (${cols}) FROM '${csv}' CSV`);
    const copyRate = LINES / copySeconds;
    report('psql_copy_rate', Math.round(copyRate), 'lines/s');
    report('postgres_sink_vs_psql_copy', (100 * LINES) / sinkSeconds / copyRate, '%');

    // Text against binary COPY, same rows, same table, server-side ingest.
    for (const format of ['text', 'binary'] as const) {
      const file = join(work, `rows.${format}`);
      await psql(`\\copy (SELECT ${cols} FROM ${SCHEMA}.access_logs) TO '${file}' WITH (FORMAT ${format})`);
      await client.query(`TRUNCATE ${SCHEMA}.copy_ref`);
      const seconds = await psql(`\\copy ${SCHEMA}.copy_ref (${cols}) FROM '${file}' WITH (FORMAT ${format})`);
      report(`copy_${format}_rate`, Math.round(LINES / seconds), 'lines/s');
      report(`copy_${format}_bytes`, (await stat(file)).size, 'bytes');
    }

    // Before the embedded run: PGlite reserves its own WebAssembly heap.
    report('postgres_sink_peak_rss', Math.round(process.resourceUsage().maxRSS / 1024), 'MiB');

    const embeddedDir = join(work, 'embedded');
    const embeddedSeconds = await loadThroughSink(
      createPostgresSink(options({}), context(embeddedDir), { env: {} }),
      EMBEDDED_LINES,
      baseMs,
    );
    report('postgres_embedded_lines', EMBEDDED_LINES, 'lines');
    report('postgres_embedded_rate', Math.round(EMBEDDED_LINES / embeddedSeconds), 'lines/s');
    report('postgres_embedded_peak_rss', Math.round(process.resourceUsage().maxRSS / 1024), 'MiB');
  } finally {
    await client.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`).catch(() => {});
    await client.end();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
