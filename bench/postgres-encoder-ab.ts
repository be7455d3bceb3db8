/**
 * A/B of the postgres sink's row encoder (record → COPY text) against another checkout of this repository:
 * the same access records, as `parse` makes them, go through each checkout's RowEncoder into a CopyBuffer,
 * both loaded in one process and run in alternating rounds (A B, then B A, …) so that load from other
 * processes on a shared machine falls on both sides alike, in a few processes; each round counts the CPU
 * time it spent encoding.
 * Cases: `plain` (ASCII values, the common case), `escaped` (one row in 10 with a backslash in its user
 * agent, one in 10 with non-ASCII in its path), and `nul` (one row in 100 with U+0000 in its request, which
 * a checkout that refuses such rows dead-letters instead: not like for like, shown for the cost of storing).
 * Prints each side's median rows per CPU-second per case and the median of the pairs' ratios.
 * Usage: node bench/postgres-encoder-ab.ts --base <path of the other checkout> [--rows N] [--rounds R]
 * [--processes P] [--cases a,b]. Without --base it prints that it was skipped (so `npm run bench` can run it).
 * With `--formats` it compares this checkout's COPY text encoder (`base`) with its COPY binary one (`this`)
 * instead, the same way.
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { EtlRecord } from '../engine/record.ts';
import { emptyAccessRecord } from '../operators/shared/log-records.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};

const AGENTS = [
  'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0',
  'curl/8.5.0',
  'Go-http-client/1.1',
];

/** Access records with the fields, in the order, `parse` gives them. */
function records(n: number, kind: string): EtlRecord[] {
  const out: EtlRecord[] = [];
  for (let i = 0; i < n; i++) {
    const rec = emptyAccessRecord();
    rec.client_ip = i % 7 === 0 ? `2001:db8::${(i % 65535).toString(16)}` : `192.0.${(i >> 8) & 255}.${i & 255}`;
    rec.timestamp = new Date((1_714_000_000 + Math.floor(i / 50)) * 1000).toISOString();
    rec.timestamp_offset_minutes = 120;
    rec.path = `/items/${i % 1000}`;
    rec.query = `page=${i % 20}`;
    rec.method = 'GET';
    rec.protocol = 'HTTP/1.1';
    rec.request = `GET ${rec.path}?${rec.query} HTTP/1.1`;
    rec.status = [200, 200, 304, 404, 500][i % 5] as number;
    rec.bytes = (i * 7919) % 200_000;
    rec.referrer = i % 3 === 0 ? 'https://www.example.com/' : null;
    rec.user_agent = AGENTS[i % AGENTS.length] as string;
    if (kind === 'escaped' && i % 10 === 3) rec.user_agent = 'Mozilla/5.0 \\"quoted\\" (compatible)';
    if (kind === 'escaped' && i % 10 === 7) rec.path = `/städte/${i % 1000}`;
    if (kind === 'nul' && i % 100 === 5) {
      rec.request = '\u0016\u0003\u0001\u0000\u00a5\u0001\u0000\u0000\u00a1\u0003\u0003';
      rec.method = null;
      rec.path = null;
      rec.query = null;
      rec.protocol = null;
    }
    out.push(rec as unknown as EtlRecord);
  }
  return out;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

interface Side {
  readonly name: string;
  readonly encoder: { encodeInto(record: EtlRecord, out: unknown): boolean };
  readonly out: { take(): Buffer };
  readonly rates: number[];
}

async function side(name: string, root: string, format?: string): Promise<Side> {
  const load = (path: string) => import(pathToFileURL(resolve(root, 'operators/sinks/postgres', path)).href);
  const { default: def } = await load('index.ts');
  const { buildLayout } = await load('layout.ts');
  const { RowEncoder } = await load('encoder.ts');
  const { CopyBuffer } = await load('copy-buffer.ts');
  const layout = buildLayout(def.examples[0]);
  const encoder =
    format === undefined
      ? new RowEncoder(layout.columns, 'extra', layout.timeColumn)
      : new RowEncoder(layout.columns, 'extra', layout.timeColumn, format);
  return {
    name,
    encoder,
    out: format === undefined ? new CopyBuffer() : encoder.buffer(),
    rates: [],
  };
}

/** Encodes `input` in batches of 1000 rows; rows per CPU-second. */
function encode(s: Side, input: readonly EtlRecord[]): number {
  let bytes = 0;
  // CPU time, not wall time: on a shared machine the process waits for a core more or less often.
  const t = process.cpuUsage();
  for (let from = 0; from < input.length; from += 1000) {
    const end = Math.min(input.length, from + 1000);
    for (let r = from; r < end; r++) s.encoder.encodeInto(input[r] as EtlRecord, s.out);
    bytes += s.out.take().length;
  }
  const used = process.cpuUsage(t);
  if (bytes === 0) throw new Error(`${s.name}: nothing encoded`);
  return input.length / ((used.user + used.system) / 1e6);
}

/**
 * One case in this process: both checkouts' encoders (each its own modules, so its own compiled code),
 * in alternating rounds (A B, B A, …) after a warm-up round each, so that the load of the machine and the
 * process's state fall on both alike; prints JSON of each side's rates.
 */
async function child(base: string, here: string, kind: string, rows: number, rounds: number): Promise<void> {
  const sides = process.argv.includes('--formats')
    ? [await side('text', here, 'text'), await side('binary', here, 'binary')]
    : [await side('base', base), await side('this', here)];
  const input = records(rows, kind);
  for (const s of sides) encode(s, input);
  for (let r = 0; r < rounds; r++) {
    for (const s of r % 2 === 0 ? sides : [...sides].reverse()) s.rates.push(encode(s, input));
  }
  process.stdout.write(JSON.stringify(sides.map((s) => s.rates)));
}

async function main(): Promise<void> {
  const rows = Number(arg('rows') ?? 50_000);
  const rounds = Number(arg('rounds') ?? 20);
  const base = arg('base');
  const self = fileURLToPath(import.meta.url);
  const here = resolve(self, '../..');
  if (process.argv.includes('--child')) {
    await child(base as string, here, arg('case') as string, rows, rounds);
    return;
  }
  const formats = process.argv.includes('--formats');
  if (base === undefined && !formats) {
    console.log('postgres-encoder-ab: skipped (give --base <other checkout>)');
    return;
  }
  const processes = Number(arg('processes') ?? 3);
  for (const kind of (arg('cases') ?? 'plain,escaped,nul').split(',')) {
    const a: number[] = [];
    const b: number[] = [];
    // A few processes: each compiles and optimises the encoders its own way.
    for (let p = 0; p < processes; p++) {
      const run = spawnSync(
        process.execPath,
        [
          self,
          '--child',
          '--base',
          resolve(base ?? here),
          '--case',
          kind,
          '--rows',
          String(rows),
          '--rounds',
          String(rounds),
          ...(formats ? ['--formats'] : []),
        ],
        { encoding: 'utf8' },
      );
      if (run.status !== 0) throw new Error(`${kind}: ${run.stderr}`);
      const [ra, rb] = JSON.parse(run.stdout) as [number[], number[]];
      a.push(...ra);
      b.push(...rb);
    }
    // Each pair ran back to back, so its ratio is the least exposed to load that comes and goes.
    const ratios = b.map((r, i) => r / (a[i] as number));
    console.log(`encoder_ab_${kind}_base_rows_per_cpu_sec: ${Math.round(median(a))} rows/s`);
    console.log(`encoder_ab_${kind}_this_rows_per_cpu_sec: ${Math.round(median(b))} rows/s`);
    const sorted = [...ratios].sort((x, y) => x - y);
    const q = (f: number) => (sorted[Math.floor(f * (sorted.length - 1))] as number).toFixed(3);
    console.log(
      `encoder_ab_${kind}_this_over_base: ${median(ratios).toFixed(3)} (median of ${ratios.length} pairs; ` +
        `quartiles ${q(0.25)}-${q(0.75)})`,
    );
  }
}

await main();
