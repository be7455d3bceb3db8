/**
 * A/B parse throughput against another checkout of this repository: the same generated combined lines go
 * through each checkout's `parse` transform, each run in a fresh process (so neither side's JIT state or
 * garbage reaches the other), in alternating pairs (A B, then B A, …) so that load from other processes on
 * a shared machine falls on both sides alike; each side counts the CPU time its process spent parsing.
 * Prints each side's median lines per CPU-second per format and the median of the pairs' ratios.
 * Usage: node bench/parse-ab.ts --base <path of the other checkout> [--lines N] [--pairs P] [--formats a,b]
 * Without --base it prints that it was skipped (so `npm run bench` can run it).
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { OperatorContext, TransformDefinition } from '../engine/operator.ts';
import { type EtlRecord, ORIGIN } from '../engine/record.ts';
import { BUILTIN_TEMPLATES } from '../operators/transforms/parse/formats/builtin.ts';
import { Formatter } from '../operators/transforms/parse/formats/formatter.ts';
import { compileTemplate } from '../operators/transforms/parse/formats/index.ts';
import { emptyAccessRecord } from '../operators/shared/log-records.ts';
import { benchContext } from './_context.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};

const context: OperatorContext = benchContext('parsed', { dataDir: '.' });

/** Deterministic lines: varied addresses (15% IPv6), paths, statuses, agents, one second per 50 lines. */
function lines(n: number): string[] {
  const format = compileTemplate(
    'combined',
    { apache: BUILTIN_TEMPLATES.combined.format },
    {
      timezone: 'UTC',
      customVariables: [],
    },
  );
  const formatter = new Formatter(format);
  const agents = [
    'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0',
    'curl/8.5.0',
    'Go-http-client/1.1',
  ];
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const rec = emptyAccessRecord();
    rec.client_ip = i % 7 === 0 ? `2001:db8::${(i % 65535).toString(16)}` : `192.0.${(i >> 8) & 255}.${i & 255}`;
    rec.timestamp = new Date((1_714_000_000 + Math.floor(i / 50)) * 1000).toISOString();
    rec.timestamp_offset_minutes = 120;
    rec.request = `GET /items/${i % 1000}?page=${i % 20} HTTP/1.1`;
    rec.status = [200, 200, 304, 404, 500][i % 5] as number;
    rec.bytes = (i * 7919) % 200_000;
    rec.referrer = i % 3 === 0 ? 'https://www.example.com/' : null;
    rec.user_agent = agents[i % agents.length] as string;
    out.push(formatter.format(rec));
  }
  return out;
}

function batches(text: readonly string[]): EtlRecord[][] {
  const out: EtlRecord[][] = [];
  for (let i = 0; i < text.length; i += 1000) {
    out.push(
      text.slice(i, i + 1000).map((message, j) => ({
        message,
        [ORIGIN]: { source: 'bench', file: 'access.log', line: i + j + 1, offset: 0 },
      })),
    );
  }
  return out;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

/** One side in this process: parses the lines `iterations` times after one warm-up pass; prints lines/s. */
async function child(root: string, format: string, n: number): Promise<void> {
  const mod = (await import(pathToFileURL(resolve(root, 'operators/transforms/parse/index.ts')).href)) as {
    default: TransformDefinition<never, unknown>;
  };
  const def = mod.default;
  const transform = await def.create({ ...(def.examples[0] as object), format } as never, context);
  const input = batches(lines(n));
  const rates: number[] = [];
  for (let i = 0; i < 4; i++) {
    let parsed = 0;
    // CPU time, not wall time: on a shared machine the process waits for a core more or less often.
    const t = process.cpuUsage();
    for (const batch of input) parsed += ((transform.process(batch) as { default?: unknown[] }).default ?? []).length;
    const used = process.cpuUsage(t);
    const seconds = (used.user + used.system) / 1e6;
    if (parsed !== n) throw new Error(`${root} ${format}: parsed ${parsed} of ${n}`);
    if (i > 0) rates.push(n / seconds);
  }
  process.stdout.write(String(median(rates)));
}

async function main(): Promise<void> {
  const childAt = process.argv.indexOf('--child');
  const n = Number(arg('lines') ?? 200_000);
  if (childAt > 0) {
    await child(process.argv[childAt + 1] as string, arg('format') as string, n);
    return;
  }
  const base = arg('base');
  if (base === undefined) {
    console.log('parse-ab: skipped (give --base <other checkout>)');
    return;
  }
  const pairs = Number(arg('pairs') ?? 6);
  const self = fileURLToPath(import.meta.url);
  const here = resolve(self, '../..');
  for (const format of (arg('formats') ?? 'combined,auto').split(',')) {
    const sides = [
      { name: 'base', root: resolve(base), rates: [] as number[] },
      { name: 'this', root: here, rates: [] as number[] },
    ];
    for (let p = 0; p < pairs; p++) {
      for (const side of p % 2 === 0 ? sides : [...sides].reverse()) {
        const run = spawnSync(
          process.execPath,
          [self, '--child', side.root, '--format', format, '--lines', String(n)],
          { encoding: 'utf8' },
        );
        if (run.status !== 0) throw new Error(`${side.name} ${format}: ${run.stderr}`);
        side.rates.push(Number(run.stdout));
      }
    }
    const [a, b] = sides.map((s) => median(s.rates)) as [number, number];
    // Each pair ran back to back, so its ratio is the least exposed to load that comes and goes.
    const ratios = (sides[1] as { rates: number[] }).rates.map(
      (r, i) => r / ((sides[0] as { rates: number[] }).rates[i] as number),
    );
    console.log(`ab_${format}_base_lines_per_cpu_sec: ${Math.round(a)} lines/s`);
    console.log(`ab_${format}_this_lines_per_cpu_sec: ${Math.round(b)} lines/s`);
    console.log(
      `ab_${format}_this_over_base: ${median(ratios).toFixed(3)} (median of ${ratios.length} pairs; ` +
        `min ${Math.min(...ratios).toFixed(3)}, max ${Math.max(...ratios).toFixed(3)})`,
    );
  }
}

await main();
