/**
 * The `aggregate` transform's throughput: requests, 5xx, bytes and p95 latency per endpoint per minute over N
 * generated nginx lines (`nginx_combined_request_time`, 100 requests per simulated second), each case in its
 * own process so that its peak RSS is its own:
 * - aggregate_only: parsed records in memory → `process()` of the aggregate, timed alone, then `flush()`;
 * - etl_file_parse_blackhole: the real pipeline without the aggregate (the parse-only rate);
 * - etl_file_parse_aggregate_blackhole: the same with the aggregate, with its keyed state checkpointed;
 * - etl_file_parse_aggregate_per_method_blackhole: the same aggregates per method (a few groups a minute).
 * The goal: the pipeline with the aggregate runs at 70% of the parse-only rate or more.
 * Usage: node bench/aggregate.ts [--lines N]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPipelinesFromString } from '../engine/config/load.ts';
import type { OperatorContext, Transform } from '../engine/operator.ts';
import type { EtlRecord } from '../engine/record.ts';
import { runPipeline } from '../engine/runtime/run.ts';
import { writeLogFile } from '../operators/sources/generator/write-file.ts';
import aggregateDefinition from '../operators/transforms/aggregate/index.ts';
import type { AggregateOptions } from '../operators/transforms/aggregate/schema.ts';
import parseDefinition from '../operators/transforms/parse/index.ts';
import type { ParseOptions } from '../operators/transforms/parse/schema.ts';
import { readFileSync } from 'node:fs';
import { benchContext } from './_context.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const BATCH = 1000;

const AGGREGATE = `
      window_seconds: 60
      group_by: [path]
      aggregates:
        requests: { fn: count }
        status_5xx: { fn: count, field: status, between: [500, 599] }
        bytes_sum: { fn: sum, field: bytes }
        latency_p95_ms: { fn: p95, field: request_time_ms }`;

const aggregateOptions = {
  window_seconds: 60,
  allowed_lateness_seconds: 0,
  time_field: 'timestamp',
  group_by: ['path'],
  aggregates: {
    requests: { fn: 'count' },
    status_5xx: { fn: 'count', field: 'status', between: [500, 599] },
    bytes_sum: { fn: 'sum', field: 'bytes' },
    latency_p95_ms: { fn: 'p95', field: 'request_time_ms' },
  },
} as AggregateOptions;

function context(id: string, watermark: () => number | undefined): OperatorContext {
  return benchContext(id, { ports: ['default', 'dead_letter'], watermark });
}

/**
 * In one process, batch by batch as a pipeline would see them: parse's `process()` and the aggregate's, each
 * timed on its own, nothing retained but the aggregate's state (holding every parsed record would make the
 * garbage collector's work, not the operators', the figure).
 */
async function aggregateOnly(file: string): Promise<void> {
  const parse = (await parseDefinition.create(
    { ...(parseDefinition.examples[0] as ParseOptions), format: 'nginx_combined_request_time' } as ParseOptions,
    context('parsed', () => undefined),
  )) as Transform;
  const lines = readFileSync(file, 'utf8').split('\n');
  lines.pop();
  // The watermark as the runtime gives it: the greatest event time seen minus 10 s.
  let max = Number.NEGATIVE_INFINITY;
  const aggregate = (await aggregateDefinition.create(
    aggregateOptions,
    context('per_minute', () => (max === Number.NEGATIVE_INFINITY ? undefined : max - 10_000)),
  )) as Transform;
  let records = 0;
  let rows = 0;
  let parseNs = 0n;
  let aggregateNs = 0n;
  for (let i = 0; i < lines.length; i += BATCH) {
    const raw = lines.slice(i, i + BATCH).map((message): EtlRecord => ({ message }));
    const t0 = process.hrtime.bigint();
    const batch = (parse.process(raw) as { default: EtlRecord[] }).default;
    const t1 = process.hrtime.bigint();
    for (const r of batch) {
      const t = Date.parse(r.timestamp as string);
      if (t > max) max = t;
    }
    const t2 = process.hrtime.bigint();
    rows += ((await aggregate.process(batch)) as { default: EtlRecord[] }).default.length;
    aggregateNs += process.hrtime.bigint() - t2;
    parseNs += t1 - t0;
    records += batch.length;
  }
  const t3 = process.hrtime.bigint();
  rows += ((await (aggregate.flush as () => unknown)()) as { default: EtlRecord[] }).default.length;
  aggregateNs += process.hrtime.bigint() - t3;
  process.stdout.write(
    JSON.stringify({
      records,
      rows,
      seconds: Number(aggregateNs) / 1e9,
      parseSeconds: Number(parseNs) / 1e9,
      maxRssKb: process.resourceUsage().maxRSS,
    }),
  );
}

/** The real pipeline, YAML → loader → runtime: file → parse (→ aggregate) → blackhole. */
async function pipeline(file: string, withAggregate: boolean, groupBy = 'path'): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'etl-bench-aggregate-'));
  try {
    const yaml = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: bench-aggregate }
spec:
  settings: { data_dir: ${JSON.stringify(dir)} }
  sources:
    logs: { type: file, paths: [${JSON.stringify(file)}] }
  operators:
    parsed: { type: parse, inputs: [logs], format: nginx_combined_request_time }
${withAggregate ? `    per_minute:\n      type: aggregate\n      inputs: [parsed]${AGGREGATE.replace('[path]', `[${groupBy}]`)}\n` : ''}  sinks:
    hole: { type: blackhole, inputs: [${withAggregate ? 'per_minute' : 'parsed'}] }
`;
    const { pipelines, diagnostics } = await loadPipelinesFromString(yaml, join(dir, 'bench.yaml'));
    const spec = pipelines[0];
    if (!spec) throw new Error(diagnostics.map((d) => d.message).join('; '));
    const started = process.hrtime.bigint();
    const result = await runPipeline(spec);
    if (!result.ok) throw result.error;
    process.stdout.write(
      JSON.stringify({
        seconds: Number(process.hrtime.bigint() - started) / 1e9,
        maxRssKb: process.resourceUsage().maxRSS,
      }),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function spawnCase(self: string, kase: string, file: string): Record<string, number> {
  const run = spawnSync(process.execPath, ['--expose-gc', self, '--case', kase, '--file', file], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`case ${kase} failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as Record<string, number>;
}

async function main(): Promise<void> {
  const lines = Number(arg('lines') ?? 1_000_000);
  const dir = mkdtempSync(join(tmpdir(), 'etl-bench-aggregate-'));
  const file = join(dir, 'access.log');
  const self = fileURLToPath(import.meta.url);
  try {
    await writeLogFile(file, lines, {
      format: 'nginx_combined_request_time',
      seed: 3,
      malformed_ratio: 0,
      requests_per_second: 100,
    });
    console.log(`bench_lines: ${lines} lines (${(statSync(file).size / 1e6).toFixed(1)} MB)`);
    const only = spawnCase(self, 'aggregate-only', file);
    console.log(
      `aggregate_only_records_per_sec: ${Math.round((only.records as number) / (only.seconds as number))} records/s`,
    );
    const parseMemRate = (only.records as number) / (only.parseSeconds as number);
    const aggregateMemRate = (only.records as number) / (only.seconds as number);
    console.log(`parse_only_records_per_sec: ${Math.round(parseMemRate)} records/s (in memory, the same lines)`);
    console.log(`aggregate_only_rows: ${only.rows} rows`);
    console.log(
      `aggregate_in_memory_share_of_parse_only_rate: ${Math.round((100 * aggregateMemRate) / parseMemRate)} % (goal ≥ 70 %)`,
    );
    console.log(`aggregate_only_peak_rss: ${Math.round((only.maxRssKb as number) / 1024)} MB (parse and aggregate)`);
    const parseOnly = spawnCase(self, 'parse-only', file);
    const withAggregate = spawnCase(self, 'with-aggregate', file);
    const parseRate = lines / (parseOnly.seconds as number);
    const aggregateRate = lines / (withAggregate.seconds as number);
    console.log(`etl_file_parse_blackhole_records_per_sec: ${Math.round(parseRate)} records/s`);
    console.log(`etl_file_parse_blackhole_peak_rss: ${Math.round((parseOnly.maxRssKb as number) / 1024)} MB`);
    console.log(`etl_file_parse_aggregate_blackhole_records_per_sec: ${Math.round(aggregateRate)} records/s`);
    console.log(
      `etl_file_parse_aggregate_blackhole_peak_rss: ${Math.round((withAggregate.maxRssKb as number) / 1024)} MB`,
    );
    console.log(`etl_aggregate_share_of_parse_only_rate: ${Math.round((100 * aggregateRate) / parseRate)} %`);
    // The same aggregates per method: a handful of groups a minute instead of a new one every 3.5 records.
    const perMethod = spawnCase(self, 'with-aggregate-per-method', file);
    const perMethodRate = lines / (perMethod.seconds as number);
    console.log(
      `etl_file_parse_aggregate_per_method_blackhole_records_per_sec: ${Math.round(perMethodRate)} records/s`,
    );
    console.log(
      `etl_file_parse_aggregate_per_method_blackhole_peak_rss: ${Math.round((perMethod.maxRssKb as number) / 1024)} MB`,
    );
    console.log(
      `etl_aggregate_per_method_share_of_parse_only_rate: ${Math.round((100 * perMethodRate) / parseRate)} %`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const kase = arg('case');
if (kase === 'aggregate-only') await aggregateOnly(arg('file') as string);
else if (kase === 'parse-only') await pipeline(arg('file') as string, false);
else if (kase === 'with-aggregate') await pipeline(arg('file') as string, true);
else if (kase === 'with-aggregate-per-method') await pipeline(arg('file') as string, true, 'method');
else await main();
