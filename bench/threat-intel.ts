/**
 * The `threat_intel` transform's cost: the real pipeline (YAML → loader → runtime) reading N generated combined
 * lines, file → parse → blackhole against file → parse → threat_intel → blackhole, with a list of 10,000 blocks
 * (IPv4 mostly /16–/32 and IPv6 /48–/64, FireHOL netset style) and the bundled signatures; 2% of the lines are attacks
 * or probes, 5% come from listed addresses. Each case runs in its own process, so its peak RSS is its own.
 * Also: the transform's `process()` alone on the parsed records, in records/s.
 * Usage: node bench/threat-intel.ts [--lines N] [--ranges N]
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPipelinesFromString } from '../engine/config/load.ts';
import type { OperatorContext } from '../engine/operator.ts';
import type { EtlRecord } from '../engine/record.ts';
import { runPipeline } from '../engine/runtime/run.ts';
import parseDefinition from '../operators/transforms/parse/index.ts';
import type { ParseOptions } from '../operators/transforms/parse/schema.ts';
import threatDefinition from '../operators/transforms/threat_intel/index.ts';
import type { ThreatIntelOptions } from '../operators/transforms/threat_intel/schema.ts';
import { random } from './_random.ts';
import { benchContext } from './_context.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};

const AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0',
  'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
  'curl/8.5.0',
];
const PATHS = [
  '/',
  '/index.html',
  '/api/v1/items',
  '/static/app.js',
  '/images/logo.png',
  '/blog/2024/05/post',
  '/search',
];
const ATTACKS = [
  ['/wp-login.php', 'Mozilla/5.0'],
  ['/.env', 'curl/8.5.0'],
  ['/item?id=1%27%20UNION%20SELECT%20NULL--', 'sqlmap/1.7.2#stable (https://sqlmap.org)'],
  ['/search?q=%3Cscript%3Ealert(1)%3C/script%3E', 'Mozilla/5.0'],
  ['/../../etc/passwd', 'Mozilla/5.00 (Nikto/2.1.6)'],
] as const;

function generate(dir: string, lines: number, ranges: number): { log: string; list: string } {
  const rnd = random(7);
  const byte = () => Math.floor(rnd() * 256);
  const listed: string[] = [];
  const blocks: string[] = ['# bench list, FireHOL netset style'];
  for (let i = 0; i < ranges; i++) {
    if (rnd() < 0.1) {
      const len = 48 + Math.floor(rnd() * 17);
      blocks.push(`2001:db8:${Math.floor(rnd() * 65536).toString(16)}::/${len}`);
    } else {
      // Mostly /16–/32, as in FireHOL level1 and Spamhaus DROP; the few shorter blocks are bogons.
      const len = rnd() < 0.0005 ? 8 : 16 + Math.floor(rnd() * 17);
      const a = `${1 + Math.floor(rnd() * 223)}.${byte()}.${byte()}.${byte()}`;
      blocks.push(`${a}/${len}`);
      if (len >= 24) listed.push(a);
    }
  }
  const list = join(dir, 'bench.netset');
  writeFileSync(list, `${blocks.join('\n')}\n`);
  const log = join(dir, 'access.log');
  const fd = openSync(log, 'w');
  let chunk = '';
  for (let i = 0; i < lines; i++) {
    const r = rnd();
    const ip =
      r < 0.05
        ? (listed[Math.floor(rnd() * listed.length)] as string)
        : r < 0.15
          ? `2001:db8:${Math.floor(rnd() * 65536).toString(16)}::${Math.floor(rnd() * 65536).toString(16)}`
          : `${1 + Math.floor(rnd() * 223)}.${byte()}.${byte()}.${byte()}`;
    let target: string;
    let agent: string;
    if (rnd() < 0.02) {
      [target, agent] = ATTACKS[Math.floor(rnd() * ATTACKS.length)] as (typeof ATTACKS)[number];
    } else {
      const path = PATHS[Math.floor(rnd() * PATHS.length)] as string;
      target = rnd() < 0.4 ? `${path}?q=${Math.floor(rnd() * 1e6)}&page=${Math.floor(rnd() * 20)}` : path;
      agent = AGENTS[Math.floor(rnd() * AGENTS.length)] as string;
    }
    chunk += `${ip} - - [05/Dec/2026:10:00:00 +0000] "GET ${target} HTTP/1.1" 200 ${Math.floor(rnd() * 50000)} "https://example.com/" "${agent}"\n`;
    if (chunk.length > 1 << 20) {
      writeSync(fd, chunk);
      chunk = '';
    }
  }
  writeSync(fd, chunk);
  closeSync(fd);
  return { log, list };
}

/** One pipeline run in this (child) process; prints its figures as JSON. */
async function pipelineChild(log: string, list: string, withThreats: boolean): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'etl-bench-threat-run-'));
  try {
    const threat = withThreats
      ? `    intel: { type: threat_intel, inputs: [parsed], lists: [{ name: bench, path: ${JSON.stringify(list)} }], reload: { watch: false, interval_seconds: 0 } }\n`
      : '';
    const yaml = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: bench-threat-intel }
spec:
  settings: { data_dir: ${JSON.stringify(dir)} }
  sources:
    logs: { type: file, paths: [${JSON.stringify(log)}] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
${threat}  sinks:
    hole: { type: blackhole, inputs: [${withThreats ? 'intel' : 'parsed'}, parsed.dead_letter] }
`;
    const { pipelines, diagnostics } = await loadPipelinesFromString(yaml, join(dir, 'bench.yaml'));
    const spec = pipelines[0];
    if (!spec) throw new Error(diagnostics.map((d) => d.message).join('; '));
    const started = process.hrtime.bigint();
    const result = await runPipeline(spec);
    if (!result.ok) throw result.error;
    process.stdout.write(
      JSON.stringify({
        records: result.stats.sinks.hole?.written ?? 0,
        seconds: Number(process.hrtime.bigint() - started) / 1e9,
        maxRssKb: process.resourceUsage().maxRSS,
      }),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const context: OperatorContext = benchContext('intel', { ports: ['default', 'threats'] });

/** `process()` alone, on records parsed beforehand; prints records/s and matches as JSON. */
async function processChild(log: string, list: string): Promise<void> {
  const { readFileSync } = await import('node:fs');
  const parse = await parseDefinition.create(
    { ...(parseDefinition.examples[0] as ParseOptions), format: 'combined' } as ParseOptions,
    context,
  );
  const parsed = parse.process(
    readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((message) => ({ message })),
  ) as { default: EtlRecord[] };
  const options = {
    ...(threatDefinition.examples[0] as ThreatIntelOptions),
    lists: [{ name: 'bench', path: list }],
    reload: { watch: false, interval_seconds: 0 },
  } as ThreatIntelOptions;
  const transform = await threatDefinition.create(options, context);
  const heapBefore = process.memoryUsage().heapUsed;
  const opening = process.hrtime.bigint();
  await transform.open?.();
  const openSeconds = Number(process.hrtime.bigint() - opening) / 1e9;
  const heapAfter = process.memoryUsage().heapUsed;
  let threats = 0;
  const records = parsed.default;
  const started = process.hrtime.bigint();
  for (let i = 0; i < records.length; i += 1000) {
    const out = (await transform.process(records.slice(i, i + 1000))) as { threats?: EtlRecord[] };
    threats += out.threats?.length ?? 0;
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await transform.close?.();
  process.stdout.write(
    JSON.stringify({
      records: records.length,
      threats,
      seconds,
      openSeconds,
      openHeapKb: (heapAfter - heapBefore) / 1024,
    }),
  );
}

function runChild(args: string[]): Record<string, number> {
  const self = fileURLToPath(import.meta.url);
  const run = spawnSync(process.execPath, [self, ...args], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`case ${args.join(' ')} failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as Record<string, number>;
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--child');
  if (i > 0) {
    const [mode, log, list] = process.argv.slice(i + 1);
    if (mode === 'process') await processChild(log as string, list as string);
    else await pipelineChild(log as string, list as string, mode === 'threats');
    return;
  }
  const lines = Number(arg('lines') ?? 200_000);
  const ranges = Number(arg('ranges') ?? 10_000);
  const dir = mkdtempSync(join(tmpdir(), 'etl-bench-threat-'));
  try {
    const { log, list } = generate(dir, lines, ranges);
    console.log(`bench_lines: ${lines} lines, list: ${ranges} blocks`);
    for (const mode of ['parse', 'threats'] as const) {
      const r = runChild(['--child', mode, log, list]);
      if (r.records !== lines) throw new Error(`${mode}: ${r.records} records, not ${lines}`);
      const name = mode === 'parse' ? 'parse' : 'parse_threat_intel';
      console.log(`${name}_lines_per_sec: ${Math.round(lines / (r.seconds as number))} lines/s`);
      console.log(`${name}_peak_rss: ${Math.round((r.maxRssKb as number) / 1024)} MiB`);
    }
    const p = runChild(['--child', 'process', log, list]);
    console.log(`threat_intel_process_records_per_sec: ${Math.round(lines / (p.seconds as number))} records/s`);
    console.log(`threat_intel_matched: ${p.threats} of ${p.records} records`);
    console.log(`threat_intel_open: ${Math.round((p.openSeconds as number) * 1000)} ms (list and signatures read)`);
    console.log(`threat_intel_open_heap: ${((p.openHeapKb as number) / 1024).toFixed(1)} MiB more heap after open`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
