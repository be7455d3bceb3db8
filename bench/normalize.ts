/**
 * The cost of the `normalize` transform: N generated nginx lines parsed (time inside `process()` only), then the
 * same lines parsed and normalized with a typical step list (the first example of
 * operators/transforms/normalize/index.ts: rename, lowercase_host, url, query, endpoint, default, two CEL computes,
 * one under `when`, drop). Alternating rounds, best of each.
 * Three runs on a 2-core machine shared with other jobs (load average 8.8–9.2), Node 24: parse alone 309–422 k
 * lines/s, normalize alone 97–145 k records/s (6.9–10.3 µs per record), parse → normalize 82–99 k lines/s.
 * Usage: node bench/normalize.ts [--lines N] [--rounds R]
 */
import { cpus, loadavg } from 'node:os';
import type { PortRecords, Transform } from '../engine/operator.ts';
import type { EtlRecord } from '../engine/record.ts';
import type { RecordSchema } from '../engine/record-schema.ts';
import { recordingContext } from '../test/support/context.ts';
import { accessRecordSchema } from '../operators/shared/log-records.ts';
import { createLineMaker } from '../operators/sources/generator/lines.ts';
import normalizeDefinition from '../operators/transforms/normalize/index.ts';
import type { NormalizeOptions } from '../operators/transforms/normalize/schema.ts';
import parseDefinition from '../operators/transforms/parse/index.ts';
import type { ParseOptions } from '../operators/transforms/parse/schema.ts';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const LINES = arg('lines', 200_000);
const ROUNDS = arg('rounds', 3);
const BATCH = 1000;

const OPTIONS = normalizeDefinition.examples[0] as NormalizeOptions;

const maker = createLineMaker({
  format: 'nginx_combined_request_time',
  seed: 7,
  malformed_ratio: 0.01,
  start_time: Date.now() - 3_600_000,
  requests_per_second: LINES / 3600,
});
const batches: EtlRecord[][] = [];
for (let i = 0; i < LINES; i += BATCH) {
  const batch: EtlRecord[] = [];
  for (let j = i; j < Math.min(LINES, i + BATCH); j++) batch.push({ message: maker.next() });
  batches.push(batch);
}

const parseOptions = { ...parseDefinition.examples[0], format: 'nginx_combined_request_time' } as ParseOptions;

async function stages() {
  const parse = (await parseDefinition.create(parseOptions, recordingContext({ id: 'parsed' }))) as Transform;
  const ctx = recordingContext({ id: 'norm', inputSchema: accessRecordSchema as RecordSchema });
  const normalize = (await normalizeDefinition.create(OPTIONS, ctx)) as Transform;
  return { parse, normalize };
}

/** Milliseconds for every batch through parse, through normalize (on records parsed beforehand), or both. */
async function round(which: 'parse' | 'normalize' | 'both', parsed: EtlRecord[][]): Promise<number> {
  const { parse, normalize } = await stages();
  const start = process.hrtime.bigint();
  if (which === 'normalize') {
    for (const records of parsed) await normalize.process(records);
  } else {
    for (const batch of batches) {
      const records = ((await parse.process(batch)) as PortRecords).default ?? [];
      if (which === 'both') await normalize.process(records);
    }
  }
  return Number(process.hrtime.bigint() - start) / 1e6;
}

const { parse, normalize } = await stages();
const parsed: EtlRecord[][] = [];
for (const batch of batches) parsed.push(((await parse.process(batch)) as PortRecords).default ?? []);
const records = parsed.reduce((n, b) => n + b.length, 0);
// Every record comes out (none is dead-lettered by these steps): the bench measures the whole list.
const sample = (await normalize.process(parsed[0] ?? [])) as PortRecords;
if ((sample.default ?? []).length !== (parsed[0] ?? []).length) throw new Error('records were dead-lettered');
const best = { parse: Number.POSITIVE_INFINITY, normalize: Number.POSITIVE_INFINITY, both: Number.POSITIVE_INFINITY };
for (let r = 0; r < ROUNDS; r++) {
  for (const which of ['parse', 'normalize', 'both'] as const)
    best[which] = Math.min(best[which], await round(which, parsed));
}
const rate = (n: number, ms: number) => Math.round((n / ms) * 1000).toLocaleString('en-US');
// A shared machine: the load says how far to trust the figures.
console.log(`load average ${(loadavg()[0] ?? 0).toFixed(1)} on ${cpus().length} CPUs, Node ${process.version}`);
console.log(
  `lines: ${LINES.toLocaleString('en-US')} (${records} parsed), steps: ${OPTIONS.steps.length}, best of ${ROUNDS} rounds`,
);
console.log(`parse alone          ${rate(LINES, best.parse).padStart(10)} lines/s`);
console.log(
  `normalize alone      ${rate(records, best.normalize).padStart(10)} records/s (${((best.normalize * 1e6) / records).toFixed(0)} ns/record)`,
);
console.log(`parse → normalize    ${rate(LINES, best.both).padStart(10)} lines/s`);
