/**
 * The cost of the `validate` transform: N generated nginx lines parsed (time inside `process()` only), then the
 * same lines parsed and validated with a realistic rule set (the first example of
 * operators/transforms/validate/README.md: ip with public_only, required, timestamp age, status, method, path, url,
 * non_negative, one CEL condition). Alternating rounds, best of each.
 * Six runs on a 2-core machine shared with other jobs (load average 8–12), Node 24: parse alone 227–690 k lines/s,
 * validate alone 131–533 k records/s (1.9–7.6 µs per record), parse → validate 84–221 k lines/s.
 * Usage: node bench/validate.ts [--lines N] [--rounds R]
 */
import { cpus, loadavg } from 'node:os';
import type { PortRecords, Transform } from '../engine/operator.ts';
import type { EtlRecord } from '../engine/record.ts';
import type { RecordSchema } from '../engine/record-schema.ts';
import { recordingContext } from '../test/support/context.ts';
import { accessRecordSchema } from '../operators/shared/log-records.ts';
import { createLineMaker } from '../operators/sources/generator/lines.ts';
import parseDefinition from '../operators/transforms/parse/index.ts';
import type { ParseOptions } from '../operators/transforms/parse/schema.ts';
import validateDefinition from '../operators/transforms/validate/index.ts';
import type { Rule } from '../operators/transforms/validate/schema.ts';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const LINES = arg('lines', 200_000);
const ROUNDS = arg('rounds', 3);
const BATCH = 1000;

const RULES: Rule[] = [
  { name: 'client_ip', ip: { field: 'client_ip', public_only: true } },
  { name: 'has_time', required: { fields: ['timestamp'] } },
  { name: 'recent', action: 'drop', timestamp: { field: 'timestamp', max_age_seconds: 604800 } },
  { name: 'status', status: { field: 'status' } },
  { name: 'method', action: 'flag', method: { field: 'method' } },
  { name: 'path', action: 'flag', path: { field: 'path', max_length: 2048 } },
  { name: 'referrer', action: 'flag', url: { field: 'referrer' } },
  { name: 'bytes', non_negative: { field: 'bytes' } },
  { name: 'upstream_answered', action: 'flag', condition: 'record.status < 500 || has(record.upstream_status)' },
];

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
  const ctx = recordingContext({ id: 'checked', inputSchema: accessRecordSchema as RecordSchema });
  const validate = (await validateDefinition.create({ rules: RULES }, ctx)) as Transform;
  return { parse, validate };
}

/** Milliseconds for every batch through parse, through validate (on records parsed beforehand), or both. */
async function round(which: 'parse' | 'validate' | 'both', parsed: EtlRecord[][]): Promise<number> {
  const { parse, validate } = await stages();
  // validate flags the records themselves (changesRecords): each round gets them as parse made them.
  const fresh = which === 'validate' ? parsed.map((records) => records.map((r) => ({ ...r }))) : [];
  const start = process.hrtime.bigint();
  if (which === 'validate') {
    for (const records of fresh) await validate.process(records);
  } else {
    for (const batch of batches) {
      const records = ((await parse.process(batch)) as PortRecords).default ?? [];
      if (which === 'both') await validate.process(records);
    }
  }
  return Number(process.hrtime.bigint() - start) / 1e6;
}

const { parse } = await stages();
const parsed: EtlRecord[][] = [];
for (const batch of batches) parsed.push(((await parse.process(batch)) as PortRecords).default ?? []);
const records = parsed.reduce((n, b) => n + b.length, 0);
const best = { parse: Number.POSITIVE_INFINITY, validate: Number.POSITIVE_INFINITY, both: Number.POSITIVE_INFINITY };
for (let r = 0; r < ROUNDS; r++) {
  for (const which of ['parse', 'validate', 'both'] as const)
    best[which] = Math.min(best[which], await round(which, parsed));
}
const rate = (n: number, ms: number) => Math.round((n / ms) * 1000).toLocaleString('en-US');
// A shared machine: the load says how far to trust the figures.
console.log(`load average ${(loadavg()[0] ?? 0).toFixed(1)} on ${cpus().length} CPUs, Node ${process.version}`);
console.log(
  `lines: ${LINES.toLocaleString('en-US')} (${records} parsed), rules: ${RULES.length}, best of ${ROUNDS} rounds`,
);
console.log(`parse alone          ${rate(LINES, best.parse).padStart(10)} lines/s`);
console.log(
  `validate alone       ${rate(records, best.validate).padStart(10)} records/s (${((best.validate * 1e6) / records).toFixed(0)} ns/record)`,
);
console.log(`parse → validate     ${rate(LINES, best.both).padStart(10)} lines/s`);
