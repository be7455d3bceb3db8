/**
 * Start-up cost of `etl apply` (issue 16): a one-line file → parse → blackhole (and → stdout) pipeline against
 * `node -e 0`; and of `etl --version` and `etl validate` of that pipeline (issue 7: each under 150 ms warm).
 * Each command is run `--runs` times, interleaved (one of each in turn, so that load from other work on the
 * machine falls on all of them alike), each `etl apply` in a fresh working directory (a first run: no
 * checkpoint, no state). One untimed round first fills Node's compile cache, as any second `etl` start finds it.
 * Figures: median and spread of wall time (spawn to exit) and of CPU time (user + system, reported by the child
 * itself at exit through a preloaded module given to every command alike), and the medians' excess over
 * `node -e 0`, the figure the goal of `etl apply` (< 150 ms) is about. Every `etl` runs with the V8 flags its first
 * line gives node when run as a command (bin/runtime.js NODE_FLAGS), as `npx etl` runs it.
 * `--baseline <bin/etl.js of another checkout>` adds the same commands run by that checkout, interleaved with
 * the others: a before/after comparison under the same load. `--sources` adds them run from the sources
 * (ETL_BUNDLE=0) beside the bundle (`npm run bundle` builds it; bin/etl.js runs the sources when it is stale).
 * Usage: node bench/startup.ts [--runs N] [--baseline path/to/bin/etl.js] [--sources]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from '../bin/runtime.js';
import { runMeasured, type Sample } from './_measured-child.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const runs = Number(arg('runs') ?? 20);
const etl = fileURLToPath(new URL('../bin/etl.js', import.meta.url));
const baseline = arg('baseline');
const sources = process.argv.includes('--sources');

const dir = mkdtempSync(join(tmpdir(), 'etl-bench-startup-'));
const log = join(dir, 'one.log');
writeFileSync(log, '203.0.113.7 - - [05/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 12 "-" "curl/8.5.0"\n');

function pipeline(sink: 'blackhole' | 'stdout'): string {
  const file = join(dir, `${sink}.yaml`);
  writeFileSync(
    file,
    [
      'apiVersion: etl/v1',
      'kind: Pipeline',
      `metadata: { name: startup-${sink} }`,
      'spec:',
      `  sources: { lines: { type: file, paths: [${JSON.stringify(log)}] } }`,
      '  operators: { parsed: { type: parse, inputs: [lines], format: combined } }',
      `  sinks: { out: { type: ${sink}, inputs: [parsed] } }`,
      '',
    ].join('\n'),
  );
  return file;
}

interface Case {
  readonly name: string;
  readonly args: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
}
const applies = (bin: string, label: string, env: NodeJS.ProcessEnv): Case[] =>
  (['blackhole', 'stdout'] as const).map((sink) => ({
    name: `${label} file → parse → ${sink}`,
    args: [...NODE_FLAGS, bin, 'apply', '--no-progress', pipeline(sink)],
    env,
  }));
const commands = (bin: string, label: string, env: NodeJS.ProcessEnv = {}): Case[] => [
  ...applies(bin, `${label} apply`, env),
  { name: `${label} --version`, args: [...NODE_FLAGS, bin, '--version'], env },
  { name: `${label} validate`, args: [...NODE_FLAGS, bin, 'validate', pipeline('blackhole')], env },
];
const cases: readonly Case[] = [
  { name: 'node -e 0', args: ['-e', '0'] },
  ...commands(etl, 'etl'),
  ...(sources ? commands(etl, 'sources', { ETL_BUNDLE: '0' }) : []),
  ...(baseline === undefined ? [] : commands(baseline, 'baseline')),
];

function runOnce(c: Case): Promise<Sample> {
  const cwd = mkdtempSync(join(dir, 'run-'));
  return runMeasured(c.args, cwd, c.env).finally(() => rmSync(cwd, { recursive: true, force: true }));
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};
const signed = (x: number): string => `${x < 0 ? '−' : '+'}${Math.abs(x).toFixed(0)}`;
const spread = (xs: readonly number[]): string => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`;

try {
  for (const c of cases) await runOnce(c);
  const samples = new Map<Case, Sample[]>(cases.map((c) => [c, []]));
  for (let round = 0; round < runs; round++) for (const c of cases) samples.get(c)?.push(await runOnce(c));

  const base = samples.get(cases[0] as Case) ?? [];
  const baseWall = median(base.map((s) => s.wallMs));
  const baseCpu = median(base.map((s) => s.cpuMs));
  process.stdout.write(
    `${runs} runs of each, interleaved; load average ${(await import('node:os')).loadavg()[0]?.toFixed(1)}\n`,
  );
  for (const c of cases) {
    const xs = samples.get(c) ?? [];
    const wall = xs.map((s) => s.wallMs);
    const cpu = xs.map((s) => s.cpuMs);
    const excess =
      c === cases[0]
        ? ''
        : ` (${signed(median(wall) - baseWall)} ms wall, ${signed(median(cpu) - baseCpu)} ms CPU over node -e 0)`;
    process.stdout.write(
      `${c.name}: wall median ${median(wall).toFixed(0)} ms (${spread(wall)}), CPU median ${median(cpu).toFixed(0)} ms (${spread(cpu)}), peak RSS ${Math.round(median(xs.map((s) => s.rssKb)) / 1024)} MiB${excess}\n`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
