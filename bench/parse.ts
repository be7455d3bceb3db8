/**
 * The `parse` transform's throughput: N generated combined lines (written by the parser's own inverse,
 * the formatter) → parse → blackhole, on one core, each case in its own process so its peak RSS is its own.
 * - combined: `format: combined`; auto: `format: auto` (sampling, then the detected format).
 * - parse_*: time inside `process()` only; pipeline_*: reading the file, splitting lines and parsing.
 * GoAccess, when on PATH, parses the same file (`--log-format=COMBINED`, JSON report) for comparison.
 * Usage: node bench/parse.ts [--lines N]
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPipelinesFromString } from '../engine/config/load.ts';
import type { OperatorContext } from '../engine/operator.ts';
import { runPipeline } from '../engine/runtime/run.ts';
import { type EtlRecord, ORIGIN, type Origin } from '../engine/record.ts';
import { Formatter } from '../operators/transforms/parse/formats/formatter.ts';
import { compileTemplate } from '../operators/transforms/parse/formats/index.ts';
import { BUILTIN_TEMPLATES } from '../operators/transforms/parse/formats/builtin.ts';
import parseDefinition from '../operators/transforms/parse/index.ts';
import { type AccessRecord, emptyAccessRecord } from '../operators/shared/log-records.ts';
import type { ParseOptions } from '../operators/transforms/parse/schema.ts';
import { random } from './_random.ts';
import { benchContext } from './_context.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const BATCH = 1000;

const AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
  'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148',
  'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
  'curl/8.5.0',
  'python-requests/2.31.0',
  'Go-http-client/1.1',
  'Mozilla/5.0 "quoted" agent \\ with escapes',
];
const REFERRERS = [null, null, 'https://www.google.com/', 'https://example.com/blog/post?id=42', 'https://t.co/abc'];
const PATHS = [
  '/',
  '/index.html',
  '/api/v1/items',
  '/static/app.js',
  '/static/css/site.css',
  '/images/logo.png',
  '/blog/2024/05/title-of-post',
  '/search',
  '/login',
  '/caf\u00e9',
];
const STATUSES = [200, 200, 200, 200, 200, 304, 301, 302, 404, 404, 500, 503, 206, 401];
const METHODS = ['GET', 'GET', 'GET', 'GET', 'POST', 'HEAD', 'PUT', 'DELETE'];

function generate(file: string, lines: number): void {
  const format = compileTemplate(
    'combined',
    { apache: BUILTIN_TEMPLATES.combined.format },
    { timezone: 'UTC', customVariables: [] },
  );
  const formatter = new Formatter(format);
  const rnd = random(42);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)] as T;
  const fd = openSync(file, 'w');
  let chunk = '';
  let second = 1_714_000_000;
  const rec: AccessRecord = emptyAccessRecord();
  for (let i = 0; i < lines; i++) {
    if (rnd() < 0.02) second++;
    const v6 = rnd() < 0.15;
    rec.client_ip = v6
      ? `2001:db8:${Math.floor(rnd() * 65535).toString(16)}::${Math.floor(rnd() * 65535).toString(16)}`
      : `${1 + Math.floor(rnd() * 223)}.${Math.floor(rnd() * 256)}.${Math.floor(rnd() * 256)}.${Math.floor(rnd() * 256)}`;
    rec.user = rnd() < 0.05 ? 'alice' : null;
    rec.timestamp = new Date(second * 1000).toISOString();
    rec.timestamp_offset_minutes = 120;
    const query = rnd() < 0.4 ? `q=${Math.floor(rnd() * 1e6)}&page=${Math.floor(rnd() * 20)}` : null;
    const path = pick(PATHS);
    const method = pick(METHODS);
    rec.request =
      rnd() < 0.002
        ? '\u0016\u0003\u0001\u0002\u0000'
        : `${method} ${path}${query === null ? '' : `?${query}`} HTTP/1.1`;
    rec.status = pick(STATUSES);
    rec.bytes = rnd() < 0.1 ? null : Math.floor(rnd() * rnd() * 2_000_000);
    rec.referrer = pick(REFERRERS);
    rec.user_agent = pick(AGENTS);
    chunk += `${formatter.format(rec)}\n`;
    if (chunk.length > 1 << 20) {
      writeSync(fd, chunk);
      chunk = '';
    }
  }
  writeSync(fd, chunk);
  closeSync(fd);
}

const silentContext: OperatorContext = benchContext('parsed');

/** One case, in a child process: file → split → parse → blackhole; prints its figures as JSON. */
async function child(file: string, format: string): Promise<void> {
  const options = { ...(parseDefinition.examples[0] as ParseOptions), format } as ParseOptions;
  const transform = await parseDefinition.create(options, silentContext);
  const fd = openSync(file, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  let carry = Buffer.alloc(0);
  let offset = 0;
  let lineNo = 0;
  let parsed = 0;
  let dead = 0;
  let parseNs = 0n;
  const started = process.hrtime.bigint();
  const flush = (batch: EtlRecord[]) => {
    const t = process.hrtime.bigint();
    const ports = transform.process(batch) as { default?: EtlRecord[]; dead_letter?: EtlRecord[] };
    parseNs += process.hrtime.bigint() - t;
    parsed += ports.default?.length ?? 0;
    dead += ports.dead_letter?.length ?? 0;
  };
  let batch: EtlRecord[] = [];
  for (;;) {
    const n = readSync(fd, buf, 0, buf.length, null);
    if (n === 0) break;
    const data = carry.length > 0 ? Buffer.concat([carry, buf.subarray(0, n)]) : buf.subarray(0, n);
    let start = 0;
    for (let nl = data.indexOf(10, start); nl >= 0; nl = data.indexOf(10, start)) {
      const origin: Origin = { source: 'bench', file, offset, line: ++lineNo };
      batch.push({ message: data.toString('utf8', start, nl), [ORIGIN]: origin });
      offset += nl - start + 1;
      start = nl + 1;
      if (batch.length === BATCH) {
        flush(batch);
        batch = [];
      }
    }
    carry = Buffer.from(data.subarray(start));
  }
  if (batch.length > 0) flush(batch);
  closeSync(fd);
  const totalNs = process.hrtime.bigint() - started;
  process.stdout.write(
    JSON.stringify({
      parsed,
      dead,
      parseSeconds: Number(parseNs) / 1e9,
      totalSeconds: Number(totalNs) / 1e9,
      maxRssKb: process.resourceUsage().maxRSS,
    }),
  );
}

/** One case, in a child process: the real pipeline, YAML → loader → runtime: file → parse → blackhole. */
async function runtimeChild(file: string, format: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'etl-bench-parse-run-'));
  try {
    const yaml = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: bench-parse }
spec:
  settings: { data_dir: ${JSON.stringify(dir)} }
  sources:
    logs: { type: file, paths: [${JSON.stringify(file)}] }
  operators:
    parsed: { type: parse, inputs: [logs], format: ${format} }
  sinks:
    hole: { type: blackhole, inputs: [parsed, parsed.dead_letter] }
`;
    const { pipelines, diagnostics } = await loadPipelinesFromString(yaml, join(dir, 'bench.yaml'));
    const spec = pipelines[0];
    if (!spec) throw new Error(diagnostics.map((d) => d.message).join('; '));
    const started = process.hrtime.bigint();
    const result = await runPipeline(spec);
    if (!result.ok) throw result.error;
    process.stdout.write(
      JSON.stringify({
        records: result.stats.sinks.hole?.written ?? 0,
        rejected: result.stats.rejected,
        seconds: Number(process.hrtime.bigint() - started) / 1e9,
        maxRssKb: process.resourceUsage().maxRSS,
      }),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function goaccess(file: string, lines: number): number | undefined {
  const probe = spawnSync('goaccess', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    console.log('goaccess: skipped (not on PATH)');
    return undefined;
  }
  const out = join(tmpdir(), `etl-bench-goaccess-${process.pid}.json`);
  const t = process.hrtime.bigint();
  const run = spawnSync('goaccess', [file, '--log-format=COMBINED', '--no-global-config', '-o', out], {
    encoding: 'utf8',
  });
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  rmSync(out, { force: true });
  if (run.status !== 0) {
    console.log(`goaccess: failed (${run.stderr.trim().split('\n')[0]})`);
    return undefined;
  }
  const rate = lines / seconds;
  console.log(`goaccess_lines_per_sec: ${Math.round(rate)} lines/s`);
  console.log(`goaccess_seconds: ${seconds.toFixed(2)} s`);
  return rate;
}

function main(): void {
  const lines = Number(arg('lines') ?? 1_000_000);
  const dir = mkdtempSync(join(tmpdir(), 'etl-bench-parse-'));
  const file = join(dir, 'access.log');
  try {
    const t = process.hrtime.bigint();
    generate(file, lines);
    console.log(`bench_lines: ${lines} lines`);
    console.log(`bench_file_size: ${(statSync(file).size / 1e6).toFixed(1)} MB`);
    console.log(`generate_seconds: ${(Number(process.hrtime.bigint() - t) / 1e9).toFixed(2)} s`);
    let ours = 0;
    for (const format of ['combined', 'auto']) {
      const self = fileURLToPath(import.meta.url);
      const run = spawnSync(process.execPath, [self, '--child', format, '--file', file], { encoding: 'utf8' });
      if (run.status !== 0) throw new Error(`case ${format} failed: ${run.stderr}`);
      const r = JSON.parse(run.stdout) as {
        parsed: number;
        dead: number;
        parseSeconds: number;
        totalSeconds: number;
        maxRssKb: number;
      };
      if (r.parsed + r.dead !== lines)
        throw new Error(`case ${format}: ${r.parsed} parsed + ${r.dead} dead != ${lines}`);
      const rate = lines / r.parseSeconds;
      if (format === 'combined') ours = rate;
      console.log(`parse_${format}_lines_per_sec: ${Math.round(rate)} lines/s`);
      console.log(`pipeline_${format}_lines_per_sec: ${Math.round(lines / r.totalSeconds)} lines/s`);
      console.log(`parse_${format}_peak_rss: ${Math.round(r.maxRssKb / 1024)} MB`);
      console.log(`parse_${format}_dead_letters: ${r.dead} lines`);
      const etl = spawnSync(process.execPath, [self, '--runtime-child', format, '--file', file], { encoding: 'utf8' });
      if (etl.status !== 0) throw new Error(`runtime case ${format} failed: ${etl.stderr}`);
      const e = JSON.parse(etl.stdout) as { records: number; rejected: number; seconds: number; maxRssKb: number };
      if (e.records !== lines) throw new Error(`runtime case ${format}: the sink took ${e.records} of ${lines}`);
      console.log(`etl_file_parse_blackhole_${format}_lines_per_sec: ${Math.round(lines / e.seconds)} lines/s`);
      console.log(`etl_file_parse_blackhole_${format}_peak_rss: ${Math.round(e.maxRssKb / 1024)} MB`);
    }
    const theirs = goaccess(file, lines);
    if (theirs !== undefined) console.log(`speedup_vs_goaccess: ${(ours / theirs).toFixed(1)} x`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const childFormat = arg('child');
const runtimeFormat = arg('runtime-child');
if (childFormat !== undefined) await child(arg('file') as string, childFormat);
else if (runtimeFormat !== undefined) await runtimeChild(arg('file') as string, runtimeFormat);
else main();
