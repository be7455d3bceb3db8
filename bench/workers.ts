/**
 * Stateless stages on worker threads (`workers`, engine/runtime/workers/README.md), end to end through YAML and the
 * runtime, with `workers: 1` (the main thread) and `workers: 2` in the same run, each case in its own process:
 * - parse: file → parse(format: auto) → blackhole;
 * - enrich: file → parse → geoip → user_agent → threat_intel → blackhole (one chain: records cross threads once);
 * - enrich_validate: the same with validate after parse (it keeps run-wide counts, so it stays on the main thread
 *   and splits the chain: records cross twice).
 * Lines are bench/enrich.ts's (realistic combined lines: Zipf-drawn clients, 10% IPv6, and agents).
 * Reported per case: lines/s in wall time, CPU time of the whole process (every thread) and of the main thread, and
 * peak RSS. On a shared machine wall time is noisy: CPU time tells the cost, wall time what a quiet machine gives.
 * Usage: node bench/workers.ts [--lines 1000000] [--workers 2] [--cases parse,enrich,enrich_validate]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPipelinesFromString } from '../engine/config/load.ts';
import { runPipeline } from '../engine/runtime/run.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};

const STAGES: Record<string, (w: number) => { stages: string; last: string }> = {
  parse: (w) => ({
    stages: `    parsed: { type: parse, inputs: [logs], format: auto, workers: ${w} }\n`,
    last: 'parsed',
  }),
  enrich: (w) => ({
    stages: `    parsed: { type: parse, inputs: [logs], format: auto, workers: ${w} }
    located: { type: geoip, inputs: [parsed], workers: ${w} }
    agents: { type: user_agent, inputs: [located], workers: ${w} }
    intel: { type: threat_intel, inputs: [agents], workers: ${w}, lists: [{ name: blocked, path: LIST }] }
`,
    last: 'intel',
  }),
  enrich_validate: (w) => ({
    stages: `    parsed: { type: parse, inputs: [logs], format: auto, workers: ${w} }
    checked:
      type: validate
      inputs: [parsed]
      rules:
        - { name: client_ip, ip: { field: client_ip } }
        - { name: has_time, required: { fields: [timestamp] } }
        - { name: status, status: { field: status } }
        - { name: method, action: flag, method: { field: method } }
        - { name: path, action: flag, path: { field: path, max_length: 2048 } }
        - { name: bytes, non_negative: { field: bytes } }
    located: { type: geoip, inputs: [checked], workers: ${w} }
    agents: { type: user_agent, inputs: [located], workers: ${w} }
    intel: { type: threat_intel, inputs: [agents], workers: ${w}, lists: [{ name: blocked, path: LIST }] }
`,
    last: 'intel',
  }),
};

interface Figures {
  records: number;
  seconds: number;
  cpuSeconds: number;
  mainCpuSeconds: number;
  maxRssKb: number;
}

async function child(name: string, workers: number, file: string, list: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'etl-bench-workers-run-'));
  const make = STAGES[name];
  if (!make) throw new Error(`no case ${name}`);
  const chain = make(workers);
  try {
    const yaml = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: bench-workers }
spec:
  settings: { data_dir: ${JSON.stringify(dir)} }
  sources:
    logs: { type: file, paths: [${JSON.stringify(file)}] }
  operators:
${chain.stages.replace('LIST', JSON.stringify(list))}  sinks:
    hole: { type: blackhole, inputs: [${chain.last}] }
`;
    const { pipelines, diagnostics } = await loadPipelinesFromString(yaml, join(dir, 'bench.yaml'));
    const spec = pipelines[0];
    if (!spec) throw new Error(diagnostics.map((d) => d.message).join('; '));
    const cpu0 = process.cpuUsage();
    const main0 = process.threadCpuUsage();
    const started = process.hrtime.bigint();
    const result = await runPipeline(spec);
    if (!result.ok) throw result.error;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    const main = process.threadCpuUsage(main0);
    const figures: Figures = {
      records: result.stats.sinks.hole?.written ?? 0,
      seconds,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      mainCpuSeconds: (main.user + main.system) / 1e6,
      maxRssKb: process.resourceUsage().maxRSS,
    };
    process.stdout.write(JSON.stringify(figures));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function main(): void {
  const lines = Number(arg('lines') ?? 1_000_000);
  const workers = Number(arg('workers') ?? 2);
  const cases = (arg('cases') ?? 'parse,enrich,enrich_validate').split(',');
  const self = fileURLToPath(import.meta.url);
  const dir = mkdtempSync(join(tmpdir(), 'etl-bench-workers-'));
  try {
    const file = join(dir, 'access.log');
    const list = join(dir, 'blocked.netset');
    const enrich = join(self, '..', 'enrich.ts');
    const written = spawnSync(process.execPath, [enrich, '--write', file, '--lines', `${lines}`], { stdio: 'inherit' });
    if (written.status !== 0) throw new Error('could not write the lines');
    writeFileSync(list, '# bench list\n203.0.113.0/24\n198.51.100.0/24\n2001:db8:bad::/48\n');
    console.log(`bench_lines: ${lines} realistic combined lines; workers 1 and ${workers}`);
    for (const name of cases) {
      for (const w of [1, workers]) {
        const run = spawnSync(
          process.execPath,
          [self, '--child', name, '--w', `${w}`, '--file', file, '--list', list],
          { encoding: 'utf8' },
        );
        if (run.status !== 0) throw new Error(`case ${name} (workers ${w}) failed: ${run.stderr}`);
        const r = JSON.parse(run.stdout) as Figures;
        if (r.records !== lines) throw new Error(`case ${name}: ${r.records} records out of ${lines} lines`);
        const label = `${name}_workers_${w}`;
        console.log(
          `${label}: ${Math.round(lines / r.seconds)} lines/s (wall ${r.seconds.toFixed(2)} s), ` +
            `cpu ${r.cpuSeconds.toFixed(2)} s (main thread ${r.mainCpuSeconds.toFixed(2)} s), ` +
            `peak RSS ${(r.maxRssKb / 1024).toFixed(0)} MiB`,
        );
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const childCase = arg('child');
if (childCase !== undefined) {
  await child(childCase, Number(arg('w')), arg('file') as string, arg('list') as string);
} else {
  main();
}
