/**
 * The dedupe transform on 1M generated records (access-log-like: client, path, status, request id; about
 * half of them repeat a request id seen within the last 100k records), keyed on `request_id`, in batches of
 * 1024 (the default batch size): records/s and peak RSS, each store in its own process.
 * - memory: the real keyed state backend (engine/state/keyed.ts), with a checkpoint every 100 batches.
 * - redis:  the Redis store against 127.0.0.1:6379 (a key prefix of its own, deleted afterwards).
 * Redis: also the records per CPU second of redis-server (INFO cpu).
 * Usage: node bench/dedupe.ts [--records N] [--store memory|redis] [--local-cache-keys N]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import type { OperatorContext } from '../engine/operator.ts';
import type { EtlRecord } from '../engine/record.ts';
import { detachedState, noopMetrics, silentLogger } from '../engine/runtime/noop.ts';
import { KeyedStateBackend } from '../engine/state/keyed.ts';
import { openRedis } from '../operators/resources/redis/redis.ts';
import { createDedupe } from '../operators/transforms/dedupe/dedupe.ts';
import definition from '../operators/transforms/dedupe/index.ts';
import type { DedupeOptions } from '../operators/transforms/dedupe/schema.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const RECORDS = Number(arg('records') ?? 1_000_000);
const STORE = arg('store');
/** Redis store: keys this run set that it remembers locally (the option's default unless given). */
const LOCAL_CACHE_KEYS = arg('local-cache-keys');
const BATCH = 1024;

/**
 * Record `i`: the first 200k and every even one bring a new request id; every odd one after them repeats the
 * id of an even record up to 100k records before (so 600k of 1M pass).
 */
function record(i: number): EtlRecord {
  const id = i % 2 === 0 || i < 200_000 ? i : i - 1 - 2 * ((i * 7919) % 50_000);
  return {
    client_ip: `203.0.113.${id % 256}`,
    path: `/page/${id % 5000}`,
    status: 200,
    request_id: `req-${id}`,
  };
}

async function run(store: 'memory' | 'redis'): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'etl-bench-dedupe-'));
  const prefix = `etl-bench-dedupe-${process.pid}:`;
  const keyed = new KeyedStateBackend(dir, 'bench');
  await keyed.restore(undefined, undefined);
  let client: Redis | undefined;
  let closeRedis: (() => Promise<void>) | undefined;
  if (store === 'redis') {
    const resource = await openRedis(
      { url: 'redis://127.0.0.1:6379', key_prefix: prefix, connect_timeout_seconds: 5 },
      { pipeline: 'bench', name: 'cache', logger: silentLogger, baseDir: dir, signal: new AbortController().signal },
    );
    client = resource.client;
    closeRedis = () => resource.close();
  }
  let snapshot = 1;
  const ctx: OperatorContext = {
    pipeline: 'bench',
    id: 'unique',
    logger: silentLogger,
    signal: new AbortController().signal,
    dataDir: dir,
    baseDir: dir,
    metrics: noopMetrics,
    requestCheckpoint: () => {},
    readPorts: new Set(['default']),
    ...detachedState,
    snapshotId: () => snapshot,
    keyed: <V>(name: string) => keyed.map<V>('unique', name),
    resource: <T>() => client as T,
  };
  const options: DedupeOptions = {
    ...(definition.examples[1] as DedupeOptions),
    fields: ['request_id'],
    store,
    ...(store === 'redis' ? { redis: 'cache' } : {}),
    ...(LOCAL_CACHE_KEYS === undefined ? {} : { local_cache_keys: Number(LOCAL_CACHE_KEYS) }),
  };
  const transform = await createDedupe(options, ctx);
  await transform.open?.();
  await transform.restore?.(undefined, undefined);
  let passed = 0;
  const redisCpuBefore = client ? await redisCpuSeconds(client) : 0;
  const started = performance.now();
  const cpu = process.cpuUsage();
  // Records are made a batch at a time, as a source hands them over (timed too: about 0.2 µs a record).
  for (let b = 0, at = 0; at < RECORDS; b++, at += BATCH) {
    const batch: EtlRecord[] = [];
    for (let i = at; i < Math.min(RECORDS, at + BATCH); i++) batch.push(record(i));
    passed += ((await transform.process(batch)).default ?? []).length;
    if (b % 100 === 99) {
      transform.snapshot?.({ id: snapshot, positions: {} });
      await keyed.prepare(snapshot);
      snapshot++;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const cpuSeconds = (used.user + used.system) / 1e6;
  const redisCpu = client ? (await redisCpuSeconds(client)) - redisCpuBefore : 0;
  console.log(`dedupe_${store}_records_per_second: ${Math.round(RECORDS / seconds)}`);
  // The process's own CPU: what a shared machine's load does not change (Redis's CPU is not in it).
  console.log(`dedupe_${store}_records_per_cpu_second: ${Math.round(RECORDS / cpuSeconds)}`);
  if (client) {
    // redis-server's CPU over the run (INFO cpu): the server is shared, so others' commands count in it too.
    console.log(`dedupe_${store}_records_per_redis_cpu_second: ${Math.round(RECORDS / redisCpu)}`);
  }
  console.log(`dedupe_${store}_passed: ${passed} of ${RECORDS}`);
  console.log(`dedupe_${store}_peak_rss: ${Math.round(process.resourceUsage().maxRSS / 1024)} MB`);
  if (client) {
    // Delete the bench's keys (SCAN + UNLINK; KEYS would block the server on a large keyspace).
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 10_000);
      cursor = next;
      // The client adds its key prefix to UNLINK's keys: they are given without it.
      if (keys.length > 0) await client.unlink(...keys.map((k) => k.slice(prefix.length)));
    } while (cursor !== '0');
  }
  await transform.close?.();
  await closeRedis?.();
  rmSync(dir, { recursive: true, force: true });
}

/** CPU seconds (user + system) the Redis server has used since it started. */
async function redisCpuSeconds(client: Redis): Promise<number> {
  const info = await client.info('cpu');
  const field = (name: string): number => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? Number.NaN);
  return field('used_cpu_user') + field('used_cpu_sys');
}

if (STORE === 'memory' || STORE === 'redis') {
  await run(STORE);
} else {
  // Each store in its own process, so that its peak RSS is its own.
  for (const store of ['memory', 'redis']) {
    const args = [fileURLToPath(import.meta.url), '--store', store, '--records', String(RECORDS)];
    if (LOCAL_CACHE_KEYS !== undefined) args.push('--local-cache-keys', LOCAL_CACHE_KEYS);
    const result = spawnSync(process.execPath, args, { stdio: 'inherit' });
    if (result.status !== 0) process.exitCode = 1;
  }
}
