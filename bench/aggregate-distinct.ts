/**
 * What a distinct count (`clients: { fn: distinct, field: client_ip }`) adds to the `aggregate` transform's
 * `process()`, per record, over N generated nginx lines parsed beforehand (100 requests per simulated second):
 * - per method per minute: a few groups, each past the exact limit (a HyperLogLog's registers);
 * - per path per minute: a new group every few records, each a small exact set of hashes;
 * - the HyperLogLog alone: hashing (xxHash64) and a register update per distinct value.
 * Each case runs `requests` alone and `requests` + `clients`, alternately, 3 times; the best of each is kept.
 * Usage: node bench/aggregate-distinct.ts [--lines N]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OperatorContext, Transform } from '../engine/operator.ts';
import type { EtlRecord } from '../engine/record.ts';
import { writeLogFile } from '../operators/sources/generator/write-file.ts';
import { HyperLogLog } from '../operators/transforms/aggregate/hyperloglog.ts';
import aggregateDefinition from '../operators/transforms/aggregate/index.ts';
import type { AggregateOptions } from '../operators/transforms/aggregate/schema.ts';
import parseDefinition from '../operators/transforms/parse/index.ts';
import type { ParseOptions } from '../operators/transforms/parse/schema.ts';
import { benchContext } from './_context.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const BATCH = 1000;

function context(id: string, watermark: () => number | undefined): OperatorContext {
  return benchContext(id, { ports: ['default', 'dead_letter'], watermark });
}

/** Seconds `process()` + `flush()` take over the batches, and the rows emitted. */
async function timeAggregate(batches: EtlRecord[][], groupBy: string, distinct: boolean) {
  let max = Number.NEGATIVE_INFINITY;
  const options = {
    window_seconds: 60,
    allowed_lateness_seconds: 0,
    time_field: 'timestamp',
    group_by: [groupBy],
    aggregates: {
      requests: { fn: 'count' },
      ...(distinct ? { clients: { fn: 'distinct', field: 'client_ip' } } : {}),
    },
  } as AggregateOptions;
  const aggregate = (await aggregateDefinition.create(
    options,
    context('per_minute', () => (max === Number.NEGATIVE_INFINITY ? undefined : max - 10_000)),
  )) as Transform;
  const maxima = batches.map((batch) => Math.max(...batch.map((r) => Date.parse(r.timestamp as string))));
  let rows = 0;
  const started = process.hrtime.bigint();
  for (let i = 0; i < batches.length; i++) {
    max = Math.max(max, maxima[i] as number);
    rows += ((await aggregate.process(batches[i] as EtlRecord[])) as { default: EtlRecord[] }).default.length;
  }
  rows += ((await (aggregate.flush as () => unknown)()) as { default: EtlRecord[] }).default.length;
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, rows };
}

async function main(): Promise<void> {
  const lines = Number(arg('lines') ?? 300_000);
  const dir = mkdtempSync(join(tmpdir(), 'etl-bench-distinct-'));
  const file = join(dir, 'access.log');
  try {
    await writeLogFile(file, lines, {
      format: 'nginx_combined_request_time',
      seed: 3,
      malformed_ratio: 0,
      requests_per_second: 100,
    });
    const parse = (await parseDefinition.create(
      { ...(parseDefinition.examples[0] as ParseOptions), format: 'nginx_combined_request_time' } as ParseOptions,
      context('parsed', () => undefined),
    )) as Transform;
    const text = readFileSync(file, 'utf8').split('\n');
    text.pop();
    const batches: EtlRecord[][] = [];
    for (let i = 0; i < text.length; i += BATCH) {
      const raw = text.slice(i, i + BATCH).map((message): EtlRecord => ({ message }));
      batches.push(((await parse.process(raw)) as { default: EtlRecord[] }).default);
    }
    const records = batches.reduce((n, b) => n + b.length, 0);
    console.log(`bench_lines: ${records} records`);
    for (const groupBy of ['method', 'path']) {
      let without = Number.POSITIVE_INFINITY;
      let withDistinct = Number.POSITIVE_INFINITY;
      let rows = 0;
      for (let round = 0; round < 3; round++) {
        without = Math.min(without, (await timeAggregate(batches, groupBy, false)).seconds);
        const timed = await timeAggregate(batches, groupBy, true);
        withDistinct = Math.min(withDistinct, timed.seconds);
        rows = timed.rows;
      }
      const ns = (s: number) => (s * 1e9) / records;
      console.log(
        `aggregate_per_${groupBy}_ns_per_record: ${ns(without).toFixed(0)} ns (requests), ` +
          `${ns(withDistinct).toFixed(0)} ns (requests + clients distinct), ` +
          `+${ns(withDistinct - without).toFixed(0)} ns for the distinct count; ${rows} rows`,
      );
    }
    // The sketch alone: 1M distinct addresses into one HyperLogLog.
    const addresses = Array.from({ length: 1_000_000 }, (_, i) => `10.${i >>> 16}.${(i >>> 8) & 255}.${i & 255}`);
    let best = Number.POSITIVE_INFINITY;
    let count = 0;
    for (let round = 0; round < 3; round++) {
      const sketch = new HyperLogLog();
      const started = process.hrtime.bigint();
      for (const address of addresses) sketch.add(address);
      best = Math.min(best, Number(process.hrtime.bigint() - started));
      count = sketch.count();
    }
    console.log(
      `hyperloglog_add_ns_per_value: ${(best / addresses.length).toFixed(0)} ns (1,000,000 distinct, estimate ${count})`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
