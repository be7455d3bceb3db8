/**
 * The cost of the `validate` transform: N generated nginx lines parsed (time inside `process()` only), then the
 * same lines parsed and validated with a realistic rule set (the first example of
 * operators/transforms/validate/README.md: ip with public_only, required, timestamp age, status, method, path, url,
 * non_negative, one CEL condition). Alternating rounds, best of each.
 * Usage: node bench/validate.ts [--lines N] [--rounds R]
 */
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

async function round(validating: boolean): Promise<{ ms: number; out: number }> {
  const parse = (await parseDefinition.create(parseOptions, recordingContext({ id: 'parsed' }))) as Transform;
  const ctx = recordingContext({ id: 'checked', inputSchema: accessRecordSchema as RecordSchema });
  const validate = (await validateDefinition.create({ rules: RULES }, ctx)) as Transform;
  let out = 0;
  const start = process.hrtime.bigint();
  for (const batch of batches) {
    const parsed = (await parse.process(batch)) as PortRecords;
    const records = parsed.default ?? [];
    if (!validating) {
      out += records.length;
      continue;
    }
    const checked = (await validate.process(records)) as PortRecords;
    out += checked.default?.length ?? 0;
  }
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, out };
}

const best = { parse: Number.POSITIVE_INFINITY, both: Number.POSITIVE_INFINITY };
let outs = { parse: 0, both: 0 };
for (let r = 0; r < ROUNDS; r++) {
  const a = await round(false);
  const b = await round(true);
  best.parse = Math.min(best.parse, a.ms);
  best.both = Math.min(best.both, b.ms);
  outs = { parse: a.out, both: b.out };
}
const rate = (ms: number) => Math.round((LINES / ms) * 1000).toLocaleString('en-US');
console.log(`lines: ${LINES.toLocaleString('en-US')}, rules: ${RULES.length}, best of ${ROUNDS} rounds`);
console.log(`parse alone          ${rate(best.parse).padStart(10)} lines/s  (${outs.parse} records out)`);
console.log(`parse → validate     ${rate(best.both).padStart(10)} lines/s  (${outs.both} records out)`);
console.log(
  `validate alone       ${(((best.both - best.parse) * 1e6) / LINES).toFixed(0).padStart(10)} ns/record (difference)`,
);
