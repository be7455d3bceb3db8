/**
 * HTTP push benchmark: `node bench/http.ts [--requests N] [--connections N] [--lines-per-request N]
 * [--checkpoint-seconds S] [--buffer]`.
 *
 * Runs `etl apply` (a child process) of http → parse → postgres (the server at ETL_BENCH_PG_URL, default the
 * test server) and drives it with autocannon: `--connections` clients (default 50) each POSTing gzip bodies of
 * `--lines-per-request` generated nginx lines (default 1000), `--requests` requests in all (default 400). Every
 * answer is a 200 only once its rows are committed, so the rate is lines durable in PostgreSQL per second.
 * Prints `name: value unit` lines: lines/s end to end, p50/p99 request latency, the answers that were not 200,
 * the child's CPU seconds per million lines (includes its start) and peak RSS, and the rows counted in the table afterwards. Load generator and pipeline share the
 * machine.
 *
 * `--buffer`: the source has a write-ahead buffer (`buffer`, fsync on), so a 200 means the lines are fsynced to
 * the log, not yet in PostgreSQL; the benchmark then also waits for every answered line to be in the table and
 * reports that rate too (`http_push_lines_per_second_committed`, from the first request to the last row).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import autocannon from 'autocannon';
import pg from 'pg';
import { writeLogFile } from '../operators/sources/generator/write-file.ts';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '400' },
    connections: { type: 'string', default: '50' },
    'lines-per-request': { type: 'string', default: '1000' },
    'checkpoint-seconds': { type: 'string', default: '1' },
    buffer: { type: 'boolean', default: false },
  },
});
const REQUESTS = Number(values.requests);
const CONNECTIONS = Number(values.connections);
const LINES = Number(values['lines-per-request']);
const CHECKPOINT_SECONDS = Number(values['checkpoint-seconds']);
const BUFFER = values.buffer;
/** Distinct bodies the clients take in turn. */
const BODIES = 16;
const URL = process.env.ETL_BENCH_PG_URL ?? process.env.ETL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const SCHEMA = `etl_bench_${randomBytes(4).toString('hex')}`;
const ETL = resolve(import.meta.dirname, '../bin/etl.js');
/** USER_HZ, the unit of utime and stime in /proc/<pid>/stat (100 on Linux). */
const CLOCK_TICKS = 100;

function report(name: string, value: number, unit: string): void {
  process.stdout.write(`${name}: ${value} ${unit}\n`);
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

/** gzip bodies of LINES generated nginx lines each. */
async function bodies(work: string): Promise<Buffer[]> {
  const log = join(work, 'access.log');
  await writeLogFile(log, BODIES * LINES, { format: 'nginx_combined', seed: 7, malformed_ratio: 0 });
  const lines = (await readFile(log, 'utf8')).split('\n');
  return Array.from({ length: BODIES }, (_, i) => gzipSync(lines.slice(i * LINES, (i + 1) * LINES).join('\n')));
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'etl-bench-http-'));
  const port = await freePort();
  const file = join(work, 'pipeline.yaml');
  await writeFile(
    file,
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: bench_http }
spec:
  settings: { data_dir: ${join(work, 'state')}, checkpoint_interval_seconds: ${CHECKPOINT_SECONDS} }
  sources:
    pushed: { type: http, listen: "127.0.0.1:${port}", max_waiting_requests: ${CONNECTIONS * 2}, max_wait_ms: 60000${BUFFER ? `, buffer: { path: ${join(work, 'wal')}, max_bytes: 4294967296, segment_bytes: 67108864 }` : ''} }
  operators:
    parsed: { type: parse, inputs: [pushed], format: combined }
  sinks:
    store: { type: postgres, inputs: [parsed], url: "${URL}", schema: ${SCHEMA}, table: access_logs }
`,
  );
  const payloads = await bodies(work);
  const child = spawn(process.execPath, [ETL, 'apply', '--no-progress', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, DATABASE_URL: '' },
  });
  let stderr = '';
  const listening = new Promise<void>((ready, fail) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (stderr.includes('listening on')) ready();
    });
    child.once('exit', (code) => fail(new Error(`etl apply exited with ${code}:\n${stderr}`)));
  });
  let peak = 0;
  const poll = setInterval(() => {
    readFile(`/proc/${child.pid}/status`, 'utf8').then(
      (status) => {
        peak = Math.max(peak, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024);
      },
      () => {},
    );
  }, 50);
  try {
    await listening;
    let next = 0;
    const started = performance.now();
    const result = await autocannon({
      url: `http://127.0.0.1:${port}/ingest`,
      connections: CONNECTIONS,
      amount: REQUESTS,
      timeout: 120,
      requests: [
        {
          method: 'POST',
          headers: { 'content-type': 'text/plain', 'content-encoding': 'gzip' },
          setupRequest: (request) => ({ ...request, body: payloads[next++ % BODIES] }),
        },
      ],
    });
    const seconds = (performance.now() - started) / 1000;
    const ok = result['2xx'];
    report('http_push_lines_per_second', Math.round((ok * LINES) / seconds), 'lines/s');
    report('http_push_requests_per_second', Math.round(ok / seconds), 'requests/s');
    report('http_push_latency_p50', result.latency.p50, 'ms');
    report('http_push_latency_p99', result.latency.p99, 'ms');
    report('http_push_answers_not_200', result.non2xx + result.errors + result.timeouts, 'requests');
    if (BUFFER) {
      // Answered once in the log: wait for the rows themselves.
      const client = new pg.Client({ connectionString: URL });
      await client.connect();
      try {
        const stored = async () =>
          (await client.query(`SELECT count(*)::int AS n FROM "${SCHEMA}".access_logs`)).rows[0].n as number;
        while ((await stored()) < ok * LINES) await new Promise((done) => setTimeout(done, 50));
      } finally {
        await client.end();
      }
      const committedSeconds = (performance.now() - started) / 1000;
      report('http_push_lines_per_second_committed', Math.round((ok * LINES) / committedSeconds), 'lines/s');
    }
    // CPU time of the pipeline process (user + system): less noisy than rates on a shared machine.
    const stat = (await readFile(`/proc/${child.pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
    const cpuSeconds = (Number(stat[11]) + Number(stat[12])) / CLOCK_TICKS;
    report('http_push_cpu_seconds_per_million_lines', Number(((cpuSeconds * 1e6) / (ok * LINES)).toFixed(1)), 's');
    child.kill('SIGINT');
    await once(child, 'exit');
    clearInterval(poll);
    report('http_push_peak_rss', Math.round(peak), 'MiB');
    const client = new pg.Client({ connectionString: URL });
    await client.connect();
    try {
      const rows = await client.query(`SELECT count(*)::int AS n FROM "${SCHEMA}".access_logs`);
      report('http_push_rows_stored', rows.rows[0].n as number, 'rows');
      report('http_push_lines_answered_200', ok * LINES, 'lines');
      await client.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
    } finally {
      await client.end();
    }
  } finally {
    clearInterval(poll);
    if (child.exitCode === null) child.kill('SIGKILL');
    await rm(work, { recursive: true, force: true });
  }
}

await main();
