/**
 * Throughput and memory of the stateful transforms on generated access records: CPU time inside `process()` (and
 * `tick()`/`flush()`) only, keyed state in memory (detached: no checkpoint writes), each case in its own process so
 * its peak RSS is its own.
 * - sessionize: N records over K clients (client_ip + user_agent), event time advancing ~N/2000 minutes in all.
 * - sessionize_bounded: the same with 10× more clients than `max_sessions` (eviction at work): memory stays bounded.
 * - anomalies: N records, keys client_ip × path × status class, 1-minute buckets closed as event time advances.
 * Usage: node bench/stateful.ts [--records N] [--keys K]
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { OperatorContext, Transform } from '../engine/operator.ts';
import type { EtlRecord } from '../engine/record.ts';
import { detachedState, noopMetrics, silentLogger } from '../engine/runtime/noop.ts';
import { createAjv } from '../engine/schema/ajv.ts';
import anomaliesDefinition from '../operators/transforms/anomalies/index.ts';
import sessionizeDefinition from '../operators/transforms/sessionize/index.ts';
import { random } from './_random.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const RECORDS = Number(arg('records') ?? 2_000_000);
const KEYS = Number(arg('keys') ?? 50_000);
const BATCH = 1000;
const CASES = ['sessionize', 'sessionize_bounded', 'anomalies'] as const;

const AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0',
  'curl/8.5.0',
];
const PATHS = ['/', '/login', '/api/items', '/static/app.js', '/search'];

/**
 * Batches of records as `parse` emits them (the fields these operators read, and a few more), made as they are
 * taken so that peak RSS is the operator's. Generating them is timed apart and subtracted.
 */
function* batches(keys: number): Generator<EtlRecord[]> {
  const next = random(42);
  const t0 = Date.parse('2026-03-01T00:00:00Z');
  for (let i = 0; i < RECORDS; i += BATCH) {
    const batch: EtlRecord[] = [];
    for (let j = i; j < Math.min(RECORDS, i + BATCH); j++) {
      // Skewed: a quarter of the traffic from 1% of the clients.
      const client = next() < 0.25 ? Math.floor(next() * (keys / 100)) : Math.floor(next() * keys);
      batch.push({
        client_ip: `10.${(client >> 16) & 255}.${(client >> 8) & 255}.${client & 255}`,
        user_agent: AGENTS[client % AGENTS.length],
        path: PATHS[Math.floor(next() * PATHS.length)],
        status: next() < 0.02 ? 503 : 200,
        // About 2000 records a minute, with jitter of a few seconds.
        timestamp: new Date(t0 + j * 30 + Math.floor(next() * 5000)).toISOString(),
        method: 'GET',
        bytes: 512,
      });
    }
    yield batch;
  }
}

async function run(which: (typeof CASES)[number]): Promise<void> {
  const def = which === 'anomalies' ? anomaliesDefinition : sessionizeDefinition;
  const options: Record<string, unknown> =
    which === 'sessionize_bounded' ? { max_sessions: Math.floor(KEYS / 10) } : {};
  createAjv().compile(def.schema)(options);
  let watermark: number | undefined;
  const maps = new Map<string, Map<string, unknown>>();
  const ctx: OperatorContext = {
    pipeline: 'bench',
    id: which,
    logger: silentLogger,
    signal: new AbortController().signal,
    dataDir: '.',
    baseDir: '.',
    metrics: noopMetrics,
    requestCheckpoint: () => {},
    readPorts: new Set(['default', 'anomalies']),
    ...detachedState,
    watermark: () => watermark,
    keyed: <V>(name: string) => {
      const map = maps.get(name) ?? new Map<string, unknown>();
      maps.set(name, map);
      return map as Map<string, V>;
    },
  };
  const transform = (await def.create(options as never, ctx)) as Transform;
  await transform.restore?.(undefined, undefined);
  const keys = which === 'sessionize_bounded' ? KEYS * 10 : KEYS;
  // CPU time, not wall time: the figures hold on a loaded machine too. Generating the input is measured apart.
  const cpu = () => {
    const usage = process.cpuUsage();
    return (usage.user + usage.system) / 1000;
  };
  let generating = cpu();
  for (const _ of batches(keys));
  generating = cpu() - generating;
  let emitted = 0;
  const start = cpu();
  for (const batch of batches(keys)) {
    // The watermark the runtime would give: the greatest event time seen less 10 s.
    watermark = Date.parse(batch[batch.length - 1]?.timestamp as string) - 10_000;
    const out = await transform.process(batch);
    emitted += out.anomalies?.length ?? 0;
    emitted += (await transform.tick?.(Date.now()))?.anomalies?.length ?? 0;
  }
  emitted += (await transform.flush?.())?.anomalies?.length ?? 0;
  const seconds = (cpu() - start - generating) / 1000;
  console.log(`${which}_records_per_second: ${Math.round(RECORDS / seconds)}`);
  if (which === 'anomalies') console.log(`${which}_flagged: ${emitted}`);
  for (const [name, map] of maps) console.log(`${which}_${name}_held: ${map.size}`);
  console.log(`${which}_peak_rss: ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB`);
}

const only = arg('case') as (typeof CASES)[number] | undefined;
if (only) await run(only);
else {
  console.log(`# ${RECORDS} records, ${KEYS} keys, batches of ${BATCH}`);
  for (const which of CASES) {
    const result = spawnSync(
      process.execPath,
      [fileURLToPath(import.meta.url), ...process.argv.slice(2), '--case', which],
      {
        stdio: 'inherit',
      },
    );
    if (result.status !== 0) process.exitCode = 1;
  }
}
