/**
 * The cost of the geoip and user_agent enrichments: N generated combined lines → parse, against
 * → parse → geoip (the bundled country database) → user_agent, on one core, each case in its own process so its
 * peak RSS is its own. Lines are generated batch by batch in the measuring process (the same seed for every case)
 * and only the `process()` calls are timed, in CPU time of the main thread.
 * Variety as a busy site sees it: `--addresses` distinct clients (10% IPv6) and `--agents` distinct User-Agents
 * (browsers × versions × systems × devices, and bots), each drawn with a Zipf law (s = 1): a few clients and
 * agents make most requests, a long tail appears once or twice. The caches' hit ratios are printed, and the
 * enrichments run once more without their caches (`cache_size: 0`, on a tenth of the lines): what the caches save.
 * Then the same lines from a file through YAML and the runtime, in wall time: parse alone, parse → geoip →
 * user_agent, and the whole enrichment chain of the issue, parse → validate (the rules a site checks) → geoip →
 * user_agent → threat_intel (a FireHOL-style list of 10,000 blocks and the bundled signatures; 1% of the requests
 * are probes).
 * `--stages` instead: the full chain's transforms alone, each batch handed from one to the next, CPU µs per record
 * per stage (for a loaded machine, where wall time says little); then again for the first lines with their answers
 * cached (`_warm_`): the difference is what each stage pays once per distinct address or agent.
 * Every case runs with the V8 flags `etl` runs with (bin/runtime.js NODE_FLAGS).
 * Usage: node bench/enrich.ts [--lines 500000] [--addresses 50000] [--agents 3000] [--pipelines-only | --stages]
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { NODE_FLAGS } from '../bin/runtime.js';
import { loadPipelinesFromString } from '../engine/config/load.ts';
import type { OperatorContext, Transform, TransformDefinition } from '../engine/operator.ts';
import type { EtlRecord } from '../engine/record.ts';
import { runPipeline } from '../engine/runtime/run.ts';
import geoipDefinition from '../operators/transforms/geoip/index.ts';
import type { GeoipOptions } from '../operators/transforms/geoip/schema.ts';
import parseDefinition from '../operators/transforms/parse/index.ts';
import type { ParseOptions } from '../operators/transforms/parse/schema.ts';
import userAgentDefinition from '../operators/transforms/user_agent/index.ts';
import type { UserAgentOptions } from '../operators/transforms/user_agent/schema.ts';
import { random } from './_random.ts';
import { benchContext } from './_context.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const BATCH = 1000;

/** Picks among `n` ranks with probability ∝ 1/rank. */
function zipf(n: number, rnd: () => number): () => number {
  const cumulative = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) cumulative[i] = sum += 1 / (i + 1);
  return () => {
    const x = rnd() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cumulative[mid] as number) < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

function addresses(n: number, rnd: () => number): string[] {
  const out: string[] = [];
  const octet = () => Math.floor(rnd() * 256);
  while (out.length < n) {
    if (rnd() < 0.1) {
      const hex = () => Math.floor(rnd() * 65536).toString(16);
      out.push(`2${Math.floor(rnd() * 4)}0${Math.floor(rnd() * 10)}:${hex()}:${hex()}::${hex()}`);
    } else {
      const first = 1 + Math.floor(rnd() * 223);
      // Mostly public; a few private (proxies, internal checks) as real logs have.
      if ((first === 10 || first === 127 || first === 192) && rnd() < 0.7) continue;
      out.push(`${first}.${octet()}.${octet()}.${octet()}`);
    }
  }
  return out;
}

const ANDROID_MODELS = ['SM-S918B', 'SM-A536B', 'Pixel 8', 'Pixel 7a', 'M2101K6G', 'CPH2451', 'SM-G991B', '2201117TY'];
const BOTS = [
  'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
  'Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)',
  'Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)',
  'Mozilla/5.0 (compatible; GPTBot/1.2; +https://openai.com/gptbot)',
  'Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)',
  'Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)',
  'kube-probe/1.31',
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36',
];

/** Distinct agents: real templates with the versions, systems and devices that vary among real clients. */
function agents(n: number, rnd: () => number): string[] {
  const out = new Set<string>(BOTS);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)] as T;
  const v = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const tools = () =>
    pick([`curl/8.${v(0, 11)}.${v(0, 1)}`, `python-requests/2.${v(25, 32)}.${v(0, 3)}`, `Go-http-client/1.1`]);
  while (out.size < n) {
    const r = rnd();
    const chrome = `${v(100, 131)}.0.${v(4000, 6800)}.${v(0, 200)}`;
    if (r < 0.35) {
      out.add(
        `Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${chrome} Safari/537.36`,
      );
    } else if (r < 0.55) {
      const ios = `${v(15, 18)}_${v(0, 6)}`;
      out.add(
        `Mozilla/5.0 (iPhone; CPU iPhone OS ${ios} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/${ios.replace('_', '.')} Mobile/15E148 Safari/604.1`,
      );
    } else if (r < 0.75) {
      out.add(
        `Mozilla/5.0 (Linux; Android ${v(10, 14)}; ${pick(ANDROID_MODELS)}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${chrome} Mobile Safari/537.36`,
      );
    } else if (r < 0.85) {
      out.add(
        `Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/${v(15, 18)}.${v(0, 6)} Safari/605.1.15`,
      );
    } else if (r < 0.95) {
      out.add(
        `Mozilla/5.0 (${pick(['X11; Linux x86_64', 'Windows NT 10.0; Win64; x64'])}; rv:${v(100, 133)}.0) Gecko/20100101 Firefox/${v(100, 133)}.0`,
      );
    } else {
      out.add(tools());
    }
  }
  return [...out];
}

const context = (id: string): OperatorContext => benchContext(id, { ports: ['default', 'dead_letter'] });

/**
 * CPU seconds of the main thread: the machine is shared, and wall time would count the time others' processes
 * hold the core. Garbage collection on the main thread counts; its helper threads do not.
 */
function cpu(): number {
  const { user, system } = process.threadCpuUsage();
  return (user + system) / 1e6;
}

interface Figures {
  lines: number;
  seconds: Record<string, number>;
  maxRssKb: number;
  geoipHitRatio?: number;
  uaHitRatio?: number;
  /** `--stages`: the heap still in use after a full collection once every line went through (what stages hold). */
  heapHeldBytes?: number;
  /** `--stages`: CPU seconds per stage for the first lines once more (WARM_BATCHES), and how many records those were. */
  warmSeconds?: Record<string, number>;
  warmRecords?: number;
}

/**
 * `--stages` then sends the first this many batches of lines through the stages again, as new records (after the
 * heap and peak RSS are read): every address and agent in them is in the caches by then (with the default
 * --addresses and --agents, no cache holds fewer entries than the lines have distinct values). So this times what
 * a stage costs per record once its answers are known (reading the field, looking it up, making the record), apart
 * from what it pays once per distinct value (a GeoIP lookup, a User-Agent parse).
 */
const WARM_BATCHES = 100;

/** The same combined lines for every case: Zipf-drawn clients and agents. */
function lineMaker(nAddresses: number, nAgents: number): () => string {
  const rnd = random(7);
  const pool = addresses(nAddresses, rnd);
  const agentPool = agents(nAgents, rnd);
  const client = zipf(pool.length, rnd);
  const agent = zipf(agentPool.length, rnd);
  const probes = ['/.env', '/wp-login.php', '/.git/config', "/item?id=1'%20OR%20'1'='1", '/../../etc/passwd'];
  return () => {
    const path = rnd() < 0.01 ? probes[Math.floor(rnd() * probes.length)] : `/products/${Math.floor(rnd() * 5000)}`;
    return (
      `${pool[client()]} - - [05/Dec/2026:10:00:00 +0000] "GET ${path} HTTP/1.1" 200 ` +
      `${Math.floor(rnd() * 50000)} "-" "${agentPool[agent()]}"`
    );
  };
}

/**
 * One case through YAML, the loader and the runtime (file → parse → [geoip → user_agent] → blackhole), in wall
 * time: what `etl apply` does with these stages.
 */
const PIPELINE_STAGES: Record<string, { stages: string; last: string }> = {
  pipeline_parse: { stages: '', last: 'parsed' },
  pipeline_parse_geoip_ua: {
    stages: `    located: { type: geoip, inputs: [parsed] }
    agents: { type: user_agent, inputs: [located] }
`,
    last: 'agents',
  },
  pipeline_full_chain: {
    stages: `    checked:
      type: validate
      inputs: [parsed]
      rules:
        - { name: client_ip, ip: { field: client_ip } }
        - { name: has_time, required: { fields: [timestamp] } }
        - { name: status, status: { field: status } }
        - { name: method, action: flag, method: { field: method } }
        - { name: path, action: flag, path: { field: path, max_length: 2048 } }
        - { name: bytes, non_negative: { field: bytes } }
    located: { type: geoip, inputs: [checked] }
    agents: { type: user_agent, inputs: [located] }
    intel:
      type: threat_intel
      inputs: [agents]
      lists: [{ name: blocked, path: LIST }]
`,
    last: 'intel',
  },
};

/** A FireHOL-style list of `n` blocks, mostly /16–/32 IPv4 and some IPv6 /48. */
function writeBlockList(file: string, n: number): void {
  const rnd = random(11);
  const blocks = ['# bench list'];
  for (let i = 0; i < n; i++) {
    const octet = () => Math.floor(rnd() * 256);
    if (rnd() < 0.1) blocks.push(`2a0${Math.floor(rnd() * 10)}:${Math.floor(rnd() * 65536).toString(16)}::/48`);
    else blocks.push(`${1 + Math.floor(rnd() * 223)}.${octet()}.${octet()}.0/${16 + Math.floor(rnd() * 17)}`);
  }
  writeFileSync(file, `${blocks.join('\n')}\n`);
}

async function pipelineChild(name: string, file: string, list: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'etl-bench-enrich-run-'));
  const chain = PIPELINE_STAGES[name];
  if (!chain) throw new Error(`no pipeline case ${name}`);
  try {
    const yaml = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: bench-enrich }
spec:
  settings: { data_dir: ${JSON.stringify(dir)} }
  sources:
    logs: { type: file, paths: [${JSON.stringify(file)}] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
${chain.stages.replace('LIST', JSON.stringify(list))}  sinks:
    hole: { type: blackhole, inputs: [${chain.last}] }
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

/**
 * The whole chain stage by stage (`--stages`): the transforms of the full-chain pipeline built from its YAML (options
 * with defaults, record schemas as the loader computed them), each batch handed from one to the next with no
 * runtime between, in CPU time of the main thread per stage. Where the chain's time goes, on a loaded machine.
 */
async function stagesChild(lines: number, nAddresses: number, nAgents: number, list: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'etl-bench-enrich-stages-'));
  const chain = PIPELINE_STAGES.pipeline_full_chain as { stages: string; last: string };
  try {
    const yaml = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: bench-enrich }
spec:
  settings: { data_dir: ${JSON.stringify(dir)} }
  sources:
    logs: { type: file, paths: [${JSON.stringify(join(dir, 'none.log'))}] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
${chain.stages.replace('LIST', JSON.stringify(list))}  sinks:
    hole: { type: blackhole, inputs: [${chain.last}] }
`;
    const { pipelines, diagnostics } = await loadPipelinesFromString(yaml, join(dir, 'bench.yaml'));
    const spec = pipelines[0];
    if (!spec) throw new Error(diagnostics.map((d) => d.message).join('; '));
    const stages: Array<[string, Transform]> = [];
    for (const stage of spec.stages) {
      if (stage.kind !== 'transform') continue;
      const ctx = { ...context(stage.id), ...(stage.inputSchema ? { inputSchema: stage.inputSchema } : {}) };
      const definition = stage.definition as TransformDefinition;
      const transform = await definition.create(stage.options, ctx);
      await transform.open?.();
      stages.push([stage.type, transform]);
    }
    const pass = async (next: () => string, n: number, seconds: Record<string, number>): Promise<number> => {
      let out = 0;
      for (let done = 0; done < n; done += BATCH) {
        let batch: EtlRecord[] = [];
        for (let i = 0; i < BATCH && done + i < n; i++) batch.push({ message: next() });
        for (const [name, stage] of stages) {
          const t = cpu();
          batch = ((await stage.process(batch)) as { default: EtlRecord[] }).default;
          seconds[name] = (seconds[name] as number) + (cpu() - t);
        }
        out += batch.length;
      }
      return out;
    };
    const seconds: Record<string, number> = Object.fromEntries(stages.map(([name]) => [name, 0]));
    const out = await pass(lineMaker(nAddresses, nAgents), lines, seconds);
    // Before the stages close: their caches are what a long run holds.
    setFlagsFromString('--expose-gc');
    (runInNewContext('gc') as () => void)();
    const heapHeldBytes = process.memoryUsage().heapUsed;
    const maxRssKb = process.resourceUsage().maxRSS;
    const warmSeconds: Record<string, number> = Object.fromEntries(stages.map(([name]) => [name, 0]));
    const warmRecords = Math.min(lines, WARM_BATCHES * BATCH);
    await pass(lineMaker(nAddresses, nAgents), warmRecords, warmSeconds);
    for (const [, stage] of stages) await stage.close?.();
    const figures: Figures = { lines: out, seconds, maxRssKb, heapHeldBytes, warmSeconds, warmRecords };
    process.stdout.write(JSON.stringify(figures));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function child(name: string, lines: number, nAddresses: number, nAgents: number): Promise<void> {
  const enrich = name !== 'parse';
  const cache = name === 'parse_geoip_ua_uncached' ? { cache_size: 0 } : {};
  const next = lineMaker(nAddresses, nAgents);
  const parse = await parseDefinition.create(
    { ...(parseDefinition.examples[0] as ParseOptions), format: 'combined' },
    context('parsed'),
  );
  const stages: Array<[string, Transform]> = [['parse', parse]];
  let geoip: Transform | undefined;
  let ua: Transform | undefined;
  if (enrich) {
    geoip = await geoipDefinition.create(
      { ...(geoipDefinition.examples[0] as GeoipOptions), ...cache },
      context('located'),
    );
    ua = await userAgentDefinition.create(
      { ...(userAgentDefinition.examples[0] as UserAgentOptions), ...cache },
      context('agents'),
    );
    await geoip.open?.();
    stages.push(['geoip', geoip], ['user_agent', ua]);
  }
  const seconds: Record<string, number> = Object.fromEntries(stages.map(([name]) => [name, 0]));
  let out = 0;
  for (let done = 0; done < lines; done += BATCH) {
    let batch: EtlRecord[] = [];
    for (let i = 0; i < BATCH && done + i < lines; i++) batch.push({ message: next() });
    for (const [name, stage] of stages) {
      const t = cpu();
      batch = (stage.process(batch) as { default: EtlRecord[] }).default;
      seconds[name] = (seconds[name] as number) + (cpu() - t);
    }
    out += batch.length;
  }
  const figures: Figures = { lines: out, seconds, maxRssKb: process.resourceUsage().maxRSS };
  if (geoip) figures.geoipHitRatio = (geoip as unknown as { cache: { hitRatio: number } }).cache.hitRatio;
  if (ua) figures.uaHitRatio = (ua as unknown as { hitRatio: number }).hitRatio;
  await geoip?.close?.();
  process.stdout.write(JSON.stringify(figures));
}

function writeLines(file: string, lines: number, nAddresses: number, nAgents: number): void {
  const next = lineMaker(nAddresses, nAgents);
  const fd = openSync(file, 'w');
  for (let done = 0; done < lines; done += BATCH) {
    let chunk = '';
    for (let i = 0; i < BATCH && done + i < lines; i++) chunk += `${next()}\n`;
    writeSync(fd, chunk);
  }
  closeSync(fd);
}

function main(): void {
  const lines = Number(arg('lines') ?? 500_000);
  const nAddresses = Number(arg('addresses') ?? 50_000);
  const nAgents = Number(arg('agents') ?? 3_000);
  console.log(`bench_lines: ${lines} lines, ${nAddresses} distinct addresses, ${nAgents} distinct agents (Zipf)`);
  const self = fileURLToPath(import.meta.url);
  const results: Record<string, Figures> = {};
  const cases = process.argv.includes('--pipelines-only') ? [] : ['parse', 'parse_geoip_ua', 'parse_geoip_ua_uncached'];
  for (const name of cases) {
    // Without caches, agents are parsed at every line: a tenth of the lines tells the rate.
    const n = name.endsWith('uncached') ? Math.ceil(lines / 10) : lines;
    const run = spawnSync(
      process.execPath,
      [
        ...NODE_FLAGS,
        self,
        '--child',
        name,
        '--lines',
        `${n}`,
        '--addresses',
        `${nAddresses}`,
        '--agents',
        `${nAgents}`,
      ],
      { encoding: 'utf8' },
    );
    if (run.status !== 0) throw new Error(`case ${name} failed: ${run.stderr}`);
    const r = JSON.parse(run.stdout) as Figures;
    if (r.lines !== n) throw new Error(`case ${name}: ${r.lines} records out of ${n} lines`);
    results[name] = r;
    const total = Object.values(r.seconds).reduce((a, b) => a + b, 0);
    console.log(`${name}_lines_per_sec: ${Math.round(n / total)} lines/s`);
    for (const [stage, s] of Object.entries(r.seconds)) {
      if (name !== 'parse')
        console.log(`${name}_${stage}_lines_per_sec: ${Math.round(n / s)} lines/s (${s.toFixed(2)} s)`);
    }
    console.log(`${name}_peak_rss: ${(r.maxRssKb / 1024).toFixed(0)} MiB`);
    if (r.geoipHitRatio !== undefined) console.log(`geoip_cache_hit_ratio: ${r.geoipHitRatio.toFixed(3)}`);
    if (r.uaHitRatio !== undefined) console.log(`user_agent_cache_hit_ratio: ${r.uaHitRatio.toFixed(3)}`);
  }
  const a = results.parse;
  const b = results.parse_geoip_ua;
  const sum = (f: Figures) => Object.values(f.seconds).reduce((x, y) => x + y, 0);
  if (a && b) {
    console.log(`enrich_slowdown: ${(sum(b) / sum(a)).toFixed(2)}x the time of parse alone`);
    console.log(`enrich_extra_rss: ${((b.maxRssKb - a.maxRssKb) / 1024).toFixed(0)} MiB`);
  }

  // Through the runtime, from a file of the same lines.
  const dir = mkdtempSync(join(tmpdir(), 'etl-bench-enrich-'));
  try {
    const file = join(dir, 'access.log');
    const list = join(dir, 'blocked.netset');
    writeLines(file, lines, nAddresses, nAgents);
    writeBlockList(list, 10_000);
    const rates: Record<string, number> = {};
    for (const name of Object.keys(PIPELINE_STAGES)) {
      const run = spawnSync(
        process.execPath,
        [...NODE_FLAGS, self, '--pipeline', name, '--file', file, '--list', list],
        {
          encoding: 'utf8',
        },
      );
      if (run.status !== 0) throw new Error(`case ${name} failed: ${run.stderr}`);
      const r = JSON.parse(run.stdout) as { records: number; seconds: number; maxRssKb: number };
      if (r.records !== lines) throw new Error(`case ${name}: ${r.records} records out of ${lines} lines`);
      rates[name] = lines / r.seconds;
      console.log(`${name}_lines_per_sec: ${Math.round(lines / r.seconds)} lines/s (wall time)`);
      console.log(`${name}_peak_rss: ${(r.maxRssKb / 1024).toFixed(0)} MiB`);
    }
    const share = (rates.pipeline_full_chain as number) / (rates.pipeline_parse as number);
    console.log(`full_chain_share_of_parse_rate: ${(share * 100).toFixed(0)}% (goal: at least 50%)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `--stages`: the per-stage CPU of the full chain alone, in µs per record (no pipeline cases). */
function stagesMain(): void {
  const lines = Number(arg('lines') ?? 500_000);
  const dir = mkdtempSync(join(tmpdir(), 'etl-bench-enrich-'));
  try {
    const list = join(dir, 'blocked.netset');
    writeBlockList(list, 10_000);
    const run = spawnSync(
      process.execPath,
      [
        ...NODE_FLAGS,
        fileURLToPath(import.meta.url),
        '--stages-child',
        '--lines',
        `${lines}`,
        '--addresses',
        arg('addresses') ?? '50000',
        '--agents',
        arg('agents') ?? '3000',
        '--list',
        list,
      ],
      { encoding: 'utf8' },
    );
    if (run.status !== 0) throw new Error(`stages failed: ${run.stderr}`);
    const r = JSON.parse(run.stdout) as Figures;
    if (r.lines !== lines) throw new Error(`stages: ${r.lines} records out of ${lines} lines`);
    let total = 0;
    for (const [stage, s] of Object.entries(r.seconds)) {
      total += s;
      console.log(`stage_${stage}_cpu_us_per_record: ${((s / lines) * 1e6).toFixed(2)}`);
    }
    console.log(`stages_total_cpu_us_per_record: ${((total / lines) * 1e6).toFixed(2)}`);
    const warmRecords = r.warmRecords ?? 0;
    let warmTotal = 0;
    for (const [stage, s] of Object.entries(r.warmSeconds ?? {})) {
      warmTotal += s;
      console.log(`stage_${stage}_warm_cpu_us_per_record: ${((s / warmRecords) * 1e6).toFixed(2)}`);
    }
    console.log(
      `stages_total_warm_cpu_us_per_record: ${((warmTotal / warmRecords) * 1e6).toFixed(2)} (the first ${warmRecords} lines again, their answers cached)`,
    );
    console.log(`stages_peak_rss: ${(r.maxRssKb / 1024).toFixed(0)} MiB`);
    console.log(`stages_heap_held_after_gc: ${((r.heapHeldBytes ?? 0) / 1048576).toFixed(1)} MiB`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const childCase = arg('child');
const pipelineCase = arg('pipeline');
if (arg('write') !== undefined) {
  // The lines alone, to run a pipeline on them by hand (`--write FILE`).
  writeLines(
    arg('write') as string,
    Number(arg('lines') ?? 500_000),
    Number(arg('addresses') ?? 50_000),
    Number(arg('agents') ?? 3_000),
  );
} else if (process.argv.includes('--stages-child')) {
  await stagesChild(Number(arg('lines')), Number(arg('addresses')), Number(arg('agents')), arg('list') as string);
} else if (process.argv.includes('--stages')) {
  stagesMain();
} else if (pipelineCase !== undefined) {
  await pipelineChild(pipelineCase, arg('file') as string, arg('list') as string);
} else if (childCase !== undefined) {
  await child(childCase, Number(arg('lines')), Number(arg('addresses')), Number(arg('agents')));
} else {
  main();
}
