/**
 * Live freshness: `node bench/freshness.ts [--rates 20000,50000] [--seconds 20] [--checkpoint S] [--chain full]`.
 *
 * A writer appends realistic combined lines to a log at a steady rate (in 10 ms steps), renaming it away and
 * starting a new one half-way (a rotation), while `etl apply` follows it with the traffic use case's enrichment
 * chain (file → parse → geoip → user_agent → postgres, the shipped defaults unless --checkpoint is given) into the
 * PostgreSQL server. `--chain full` runs the traffic use case's whole pipeline instead (pipelines/traffic.yaml as
 * shipped, its source following the log: sessions, the bot flag and the four hourly rollups into PostgreSQL too).
 * Each line carries the time it was written (`w=<epoch ms>` in its query); a poller reads the
 * probes (one line in 100) of the last seconds as they become visible (every 20 ms) and takes, per probe, the time
 * it was first seen (the start of the query that first returned it) minus the time it was written: freshness, from
 * a line written to it being queryable (the poll's own granularity included). Prints
 * p50/p95/p99 per rate, the lines the pipeline kept up with, and etl's peak RSS and CPU time.
 * `ETL_BENCH_NO_ROTATION=1` writes one file throughout; `ETL_BENCH_VERBOSE=1` prints etl's own output after a run.
 * `ETL_BENCH_METRICS_PORT=<port>` has etl serve its metrics there and prints, per rate, how many checkpoints it
 * took and their mean whole duration (cut to commit) and the sink's mean share of it: what bounds freshness.
 * `ETL_BENCH_ETL=<path to bin/etl.js>` runs another checkout's etl (A/B against a commit before).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { parse, stringify } from 'yaml';
import { NODE_FLAGS } from '../bin/runtime.js';

const { values } = parseArgs({
  options: {
    rates: { type: 'string', default: '20000,50000' },
    seconds: { type: 'string', default: '20' },
    checkpoint: { type: 'string' },
    chain: { type: 'string', default: 'enrich' },
  },
});
const RATES = String(values.rates).split(',').map(Number);
const SECONDS = Number(values.seconds);
const URL = process.env.ETL_BENCH_PG_URL ?? process.env.ETL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ETL = resolve(process.env.ETL_BENCH_ETL ?? resolve(import.meta.dirname, '../bin/etl.js'));
const FULL = values.chain === 'full';
if (!FULL && values.chain !== 'enrich') throw new Error(`--chain is enrich or full, not ${values.chain}`);
/** The table the probes land in. */
const TABLE = FULL ? 'traffic_hits' : 'hits';
const METRICS_PORT = process.env.ETL_BENCH_METRICS_PORT;

/** Sum and count of a histogram in a Prometheus text exposition (all its series added). */
function histogram(text: string, name: string): { sum: number; count: number } {
  const total = (suffix: string) =>
    [...text.matchAll(new RegExp(`^${name}_${suffix}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce(
      (acc, m) => acc + Number(m[1]),
      0,
    );
  return { sum: total('sum'), count: total('count') };
}

const AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36',
  'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
];
/** Freshness is sampled on every PROBE_EVERY-th line: looking for every row would load the server more than the sink. */
const PROBE_EVERY = 100;
const REFERRERS = ['https://www.google.com/search?q=shoes&hl=en', '-', 'https://example.com/category/shoes?page=2'];

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** The CLF time of `now`: made once per write step, not per line (the writer must not be what lags). */
function clf(now: number): string {
  const d = new Date(now);
  const pad = (x: number) => String(x).padStart(2, '0');
  return `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}

function line(n: number, now: number, stamp: string): string {
  const ip = n % 10 === 0 ? `2001:db8::${(n & 0xffff).toString(16)}` : `81.2.${(n >> 8) & 255}.${n & 255}`;
  // One line in PROBE_EVERY is a probe the poller looks for: it carries when it was written and its number.
  const target = n % PROBE_EVERY === 0 ? `/probe?w=${now}&n=${n}` : `/products/${n % 5000}?page=${n % 7}`;
  return `${ip} - - [${stamp}] "GET ${target} HTTP/1.1" 200 ${n % 40_000} "${REFERRERS[n % 3]}" "${AGENTS[n % 4]}"`;
}

function pipelineYaml(dir: string, schema: string): string {
  const settings = values.checkpoint ? `\n    checkpoint_interval_seconds: ${values.checkpoint}` : '';
  const telemetry = METRICS_PORT ? `\n  telemetry: { metrics: { prometheus_port: ${METRICS_PORT} } }` : '';
  return `apiVersion: etl/v1
kind: Pipeline
metadata: { name: freshness }
spec:
  settings:
    data_dir: ${join(dir, '.etl')}${settings}${telemetry}
  sources:
    logs: { type: file, paths: ["${join(dir, 'access.log*')}"], follow: true }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
    located: { type: geoip, inputs: [parsed] }
    agents: { type: user_agent, inputs: [located] }
  sinks:
    store: { type: postgres, inputs: [agents], url: "${URL}", schema: ${schema}, table: hits, partition: day }
`;
}

/** pipelines/traffic.yaml following the log, its tables in `schema`, its state and rejects under `dir`. */
function fullPipelineYaml(dir: string, schema: string): string {
  const doc = parse(readFileSync(resolve(import.meta.dirname, '../pipelines/traffic.yaml'), 'utf8'));
  const spec = doc.spec;
  spec.settings.data_dir = join(dir, '.etl');
  if (values.checkpoint) spec.settings.checkpoint_interval_seconds = Number(values.checkpoint);
  if (METRICS_PORT) spec.telemetry = { metrics: { prometheus_port: Number(METRICS_PORT) } };
  Object.assign(spec.sources.access_logs, { paths: [join(dir, 'access.log*')], follow: true });
  for (const sink of Object.values(spec.sinks) as Array<Record<string, unknown>>) {
    if (sink.type === 'postgres') Object.assign(sink, { url: URL, schema });
    if (sink.type === 'file') sink.path = join(dir, 'rejects.jsonl');
  }
  return stringify(doc);
}

/** User plus system CPU seconds of process `pid` so far (/proc/<pid>/stat, in clock ticks of 1/100 s). */
function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;

async function measure(rate: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'etl-freshness-'));
  const schema = `etl_fresh_${randomBytes(4).toString('hex')}`;
  const log = join(dir, 'access.log');
  writeFileSync(log, '');
  writeFileSync(join(dir, 'pipeline.yaml'), FULL ? fullPipelineYaml(dir, schema) : pipelineYaml(dir, schema));
  const client = new pg.Client({ connectionString: URL });
  await client.connect();
  // With the V8 flags the `etl` command starts node with (bin/runtime.js NODE_FLAGS), as a user's run has them.
  const child = spawn(process.execPath, [...NODE_FLAGS, ETL, 'apply', '--no-progress', join(dir, 'pipeline.yaml')], {
    env: { ...process.env, ETL_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  let peak = 0;
  const rss = setInterval(() => {
    try {
      peak = Math.max(
        peak,
        Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024,
      );
    } catch {}
  }, 200);
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  // Wait until the table exists (etl started and opened its sink).
  for (;;) {
    if (gone) throw new Error(`etl exited before its table existed:\n${stderr}`);
    const { rows } = await client.query('SELECT to_regclass($1) AS t', [`${schema}.${TABLE}`]);
    if (rows[0]?.t) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  // The poller finds the probes through an index of its own on them alone (1 row in PROBE_EVERY), made before the
  // writer starts: the table's BRIN index on event time leaves the pages written since the last summary (all of
  // them, in a run this short) to a scan whose cost grows with the table, and on this 2-core machine that query
  // took up to 65% of a core by the 10th second at 50k lines/s, CPU etl then lacked (freshness rose from ~0.2 s to
  // 2–4 s exactly then). A partitioned table hands the index to the partitions the sink creates later.
  await client.query(`CREATE INDEX ${TABLE}_probes ON "${schema}".${TABLE} (timestamp) WHERE path = '/probe'`);
  const freshness: number[] = [];
  let written = 0;
  const started = Date.now();
  let rotated = false;
  const writer = setInterval(() => {
    const now = Date.now();
    const due = Math.min(rate * SECONDS, Math.floor(((now - started) / 1000) * rate));
    if (!rotated && !process.env.ETL_BENCH_NO_ROTATION && due >= (rate * SECONDS) / 2) {
      renameSync(log, `${log}.1`);
      writeFileSync(log, '');
      rotated = true;
    }
    if (due > written) {
      const lines: string[] = [];
      const stamp = clf(now);
      for (; written < due; written++) lines.push(line(written, now, stamp));
      appendFileSync(log, `${lines.join('\n')}\n`);
    }
  }, 10);
  // Poll: the probes of the last seconds of event time (through the index above), each counted the first time it is
  // seen.
  const total = rate * SECONDS;
  const probes = Math.ceil(total / PROBE_EVERY);
  const seen = new Uint8Array(total);
  let newest = started;
  /** Per probe: the second of the run it was written in, and its freshness (for ETL_BENCH_VERBOSE). */
  const bySecond: Array<[number, number]> = [];
  const deadline = started + SECONDS * 1000 + 30_000;
  const pollMs: number[] = [];
  while (freshness.length < probes && Date.now() < deadline) {
    const polled = performance.now();
    // A row the query returns was queryable when the query took its snapshot, at its start (parse and plan of this
    // statement take well under a millisecond): that is when it is first seen, not when the answer came back, which
    // would add the poll's own duration (37 ms median, up to 360 ms at 50k lines/s) to every figure.
    const queried = Date.now();
    const { rows } = await client.query(
      `SELECT (regexp_match(query, 'w=(\\d+)'))[1]::bigint AS w, (regexp_match(query, 'n=(\\d+)'))[1]::int AS n
         FROM "${schema}".${TABLE} WHERE timestamp >= $1 AND path = '/probe'`,
      [new Date(Math.floor(newest / 1000) * 1000 - 2000).toISOString()],
    );
    const now = queried;
    pollMs.push(performance.now() - polled);
    for (const row of rows) {
      const n = Number(row.n);
      if (seen[n] === 1) continue;
      seen[n] = 1;
      freshness.push(now - Number(row.w));
      bySecond.push([Math.floor((Number(row.w) - started) / 1000), now - Number(row.w)]);
      if (Number(row.w) > newest) newest = Number(row.w);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const { rows: counted } = await client.query(`SELECT count(*)::int AS n FROM "${schema}".${TABLE}`);
  const metrics = METRICS_PORT
    ? await fetch(`http://127.0.0.1:${METRICS_PORT}/metrics`).then(
        (r) => r.text(),
        () => '',
      )
    : '';
  clearInterval(writer);
  clearInterval(rss);
  const cpu = cpuSeconds(child.pid);
  child.kill('SIGINT');
  const code = await exited;
  if (code !== 0 || process.env.ETL_BENCH_VERBOSE) process.stderr.write(stderr);
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
  rmSync(dir, { recursive: true, force: true });
  freshness.sort((a, b) => a - b);
  const label = `freshness_${rate}`;
  if (process.env.ETL_BENCH_VERBOSE) {
    pollMs.sort((a, b) => a - b);
    console.log(
      `${label}_poll: ${pollMs.length} queries, p50 ${quantile(pollMs, 0.5).toFixed(0)} ms, max ${pollMs.at(-1)?.toFixed(0)} ms`,
    );
    // Where the tail comes from: warm-up, a rotation, or all along.
    for (let second = 0; second < SECONDS; second++) {
      const those = bySecond
        .filter(([s]) => s === second)
        .map(([, f]) => f)
        .sort((a, b) => a - b);
      console.log(`${label}_second_${second}: p50 ${quantile(those, 0.5)} ms, max ${those.at(-1) ?? '-'} ms`);
    }
  }
  console.log(`${label}_lines: ${counted[0]?.n} of ${total} stored; ${freshness.length} of ${probes} probes seen`);
  console.log(`${label}_p50: ${quantile(freshness, 0.5)} ms`);
  console.log(`${label}_p95: ${quantile(freshness, 0.95)} ms`);
  console.log(`${label}_p99: ${quantile(freshness, 0.99)} ms`);
  console.log(`${label}_peak_rss: ${Math.round(peak)} MiB`);
  console.log(`${label}_cpu: ${cpu.toFixed(1)} s user+sys of etl (started to measured)`);
  if (metrics) {
    const whole = histogram(metrics, 'etl_checkpoint_duration_seconds');
    const sink = histogram(metrics, 'etl_sink_commit_duration_seconds');
    const ms = (h: { sum: number; count: number }) => Math.round((h.sum / Math.max(1, h.count)) * 1000);
    console.log(
      `${label}_checkpoints: ${whole.count}, mean ${ms(whole)} ms cut to commit (sink's part ${ms(sink)} ms)`,
    );
  }
}

for (const rate of RATES) await measure(rate);
