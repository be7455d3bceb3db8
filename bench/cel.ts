/**
 * Per-record evaluation speed of the CEL implementations on npm, to choose the one engine/expression.ts uses:
 * one condition over three fields of access-like records, compiled once, evaluated N times.
 * Usage: node bench/cel.ts [--evals N]
 */
import { cpus, loadavg } from 'node:os';
import { celEnv, parse as bufParse, plan } from '@bufbuild/cel';
import { Environment } from '@marcbachmann/cel-js';
import * as celJs from 'cel-js';
import { compileCondition } from '../engine/expression.ts';
import type { RecordSchema } from '../engine/record-schema.ts';
import { accessRecordSchema } from '../operators/shared/log-records.ts';

const i = process.argv.indexOf('--evals');
const N = i > 0 ? Number(process.argv[i + 1]) : 300_000;
const records = Array.from({ length: 1000 }, (_, n) => ({
  status: 200 + (n % 5) * 100,
  method: n % 7 ? 'GET' : 'POST',
  path: `/a/${n}`,
  size: n * 10,
}));
// The subset every implementation runs (cel-js 0.8.2 has no `startsWith`; doubles compare with `.0` literals).
const source = 'status < 500.0 && (method == "GET" || size > 100.0) && path != ""';

function time<R>(name: string, evaluate: (r: R) => unknown, input: readonly R[] = records as unknown as R[]): void {
  for (let n = 0; n < 20_000; n++) evaluate(input[n % 1000] as R);
  const start = process.hrtime.bigint();
  let matched = 0;
  for (let n = 0; n < N; n++) if (evaluate(input[n % 1000] as R) === true) matched++;
  const ns = Number(process.hrtime.bigint() - start) / N;
  console.log(
    `${name.padEnd(34)} ${(1e3 / ns).toFixed(2).padStart(6)} M/s ${ns.toFixed(0).padStart(6)} ns/record (${matched} true)`,
  );
}

const marc = new Environment()
  .registerVariable('status', 'double')
  .registerVariable('method', 'string')
  .registerVariable('path', 'string')
  .registerVariable('size', 'double')
  .parse(source);
// A shared machine: the load says how far to trust the figures.
console.log(`load average ${(loadavg()[0] ?? 0).toFixed(1)} on ${cpus().length} CPUs, Node ${process.version}`);
type R = (typeof records)[number];
time('@marcbachmann/cel-js', (r: R) => marc(r));
const bufbuild = plan(celEnv(), bufParse(source));
time('@bufbuild/cel', (r: R) => bufbuild(r));
const parsed = celJs.parse(source);
if (!parsed.isSuccess) throw new Error('cel-js cannot parse the condition');
const cst = parsed.cst;
time('cel-js', (r: R) => celJs.evaluate(cst, r));
time('plain JavaScript (floor)', (r: R) => r.status < 500 && (r.method === 'GET' || r.size > 100) && r.path !== '');

// What operators pay: engine/expression.ts over a closed schema (a view of the fields read, integers as int).
const compiled = compileCondition(
  'record.status < 500 && (record.method == "GET" || record.bytes > 100) && record.path != ""',
  accessRecordSchema as RecordSchema,
);
if ('problem' in compiled) throw new Error(compiled.problem.message);
const accessRecords = records.map((r) => ({ ...r, bytes: r.size }));
const condition = compiled.condition;
time(
  'engine/expression.ts',
  (r: (typeof accessRecords)[number]) => {
    const out = condition.evaluate(r);
    return out.ok && out.value;
  },
  accessRecords,
);
