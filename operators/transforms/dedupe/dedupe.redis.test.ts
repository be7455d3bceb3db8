/**
 * The dedupe transform with the Redis store, against the real Redis on 127.0.0.1:6379 (a key prefix of the
 * test's own) and, for outages, a throwaway `redis-server` the test stops and restarts: instances share the
 * keys, a replay after a crash passes first occurrences again, and a store that is down is waited for,
 * passed or failed as the policy says.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { OpenResource, Transform } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import { silentLogger } from '../../../engine/runtime/noop.ts';
import { type RecordingContext, recordingContext } from '../../../test/support/context.ts';
import { ThrowawayRedis } from '../../../test/support/redis-server.ts';
import { openRedis } from '../../resources/redis/redis.ts';
import { createDedupe } from './dedupe.ts';
import definition from './index.ts';
import { keyFunction } from './key.ts';
import type { DedupeOptions } from './schema.ts';
import { REDIS_URL } from '../../../test/support/redis-url.ts';
import { until } from '../../../test/support/until.ts';

const prefix = `etl-test-dedupe-${process.pid}-${Date.now()}:`;
const dir = mkdtempSync(join(tmpdir(), 'etl-dedupe-redis-'));
const opened: OpenResource<Redis>[] = [];

afterAll(async () => {
  const check = await open(REDIS_URL, '');
  const keys = await check.client.keys(`${prefix}*`);
  if (keys.length > 0) await check.client.del(...keys);
  for (const resource of opened) await resource.close();
  rmSync(dir, { recursive: true, force: true });
});

async function open(url: string, keyPrefix = prefix): Promise<OpenResource<Redis>> {
  const resource = await openRedis(
    { url, key_prefix: keyPrefix, connect_timeout_seconds: 5 },
    { pipeline: 'test', name: 'cache', logger: silentLogger, baseDir: dir, signal: new AbortController().signal },
  );
  opened.push(resource);
  return resource;
}

const options = (extra: Partial<DedupeOptions>): DedupeOptions => ({
  ...(definition.examples[3] as DedupeOptions),
  fields: ['id'],
  ...extra,
});

interface Instance {
  ctx: RecordingContext;
  transform: Transform;
  /** The id of the snapshot the next records belong to; `cut()` takes it and moves on. */
  cut(): unknown;
}

let instances = 0;

/** One run of a dedupe stage: `dataDir` is the instance's, `resumeFrom` the checkpoint it restarts from. */
async function start(
  client: Redis,
  extra: Partial<DedupeOptions> = {},
  dataDir = join(dir, `instance-${instances++}`),
  resumeFrom?: { state: unknown; id: number },
): Promise<Instance & { dataDir: string }> {
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dataDir, { recursive: true });
  let snapshot = (resumeFrom?.id ?? 0) + 1;
  const ctx = recordingContext({
    id: 'dd',
    dataDir,
    resource: <T>() => client as T,
    snapshotId: () => snapshot,
  });
  const transform = createDedupe(options(extra), ctx);
  await transform.open?.();
  await transform.restore?.(resumeFrom?.state, resumeFrom?.id);
  return {
    ctx,
    transform,
    dataDir,
    cut: () => {
      const state = transform.snapshot?.({ id: snapshot, positions: {} });
      snapshot++;
      return state;
    },
  };
}

const ids = (out: { default?: EtlRecord[] }) => (out.default ?? []).map((r) => r.id);
const batch = (...values: unknown[]) => values.map((id) => ({ id }));

describe('dedupe (Redis store)', () => {
  it('drops duplicates within and across batches and across instances sharing the server', async () => {
    const { client } = await open(REDIS_URL);
    const a = await start(client);
    expect(ids(await a.transform.process(batch(1, 2, 1, 3)))).toEqual([1, 2, 3]);
    expect(ids(await a.transform.process(batch(3, 4)))).toEqual([4]);
    expect(a.ctx.values.get('etl_dedupe_dropped_total')).toBe(2);
    // Another instance (its own data directory) drops what the first passed.
    const b = await start(client);
    expect(ids(await b.transform.process(batch(1, 5, 4)))).toEqual([5]);
    expect(ids(await a.transform.process(batch(5)))).toEqual([]);
    const { client: raw } = await open(REDIS_URL, '');
    const stored = await raw.keys(`${prefix}dedupe:test/dd:*`);
    expect(stored).toHaveLength(5);
    const ttl = await raw.pttl(stored[0] as string);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(3600_000);
  });

  it('after a crash, passes again the records of snapshots that did not commit, drops those that did', async () => {
    const { client } = await open(REDIS_URL);
    const first = await start(client, { fields: ['k'] });
    const rec = (k: string) => ({ k });
    expect((await first.transform.process([rec('c1'), rec('c2')])).default).toHaveLength(2);
    const committed = first.cut(); // snapshot 1 commits
    expect((await first.transform.process([rec('u1'), rec('c1')])).default).toEqual([rec('u1')]);
    first.cut(); // snapshot 2 is cut but never commits: the process is killed
    expect((await first.transform.process([rec('u2')])).default).toHaveLength(1);
    // The rerun resumes from snapshot 1: the records after it are replayed.
    const rerun = await start(client, { fields: ['k'] }, first.dataDir, { state: committed, id: 1 });
    const replay = await rerun.transform.process([rec('u1'), rec('c1'), rec('u2'), rec('u1'), rec('c2')]);
    expect(replay.default).toEqual([rec('u1'), rec('u2')]);
    // The keys are the rerun's now: a second crash, resuming from the same snapshot, replays them again.
    const again = await start(client, { fields: ['k'] }, first.dataDir, { state: committed, id: 1 });
    expect((await again.transform.process([rec('u2'), rec('u1')])).default).toEqual([rec('u2'), rec('u1')]);
    // Once the rerun commits, its keys count for the next run.
    const state = again.cut();
    const later = await start(client, { fields: ['k'] }, first.dataDir, { state, id: 2 });
    expect((await later.transform.process([rec('u1'), rec('u2'), rec('u3')])).default).toEqual([rec('u3')]);
  });

  it('never drops a first occurrence, whatever the crashes (property)', async () => {
    const { client } = await open(REDIS_URL);
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 1, maxLength: 60 }),
        fc.array(fc.tuple(fc.integer({ min: 1, max: 8 }), fc.boolean(), fc.boolean()), { minLength: 1, maxLength: 12 }),
        async (values, steps) => {
          // Each step: a batch, then maybe a cut (which commits), then maybe a crash back to the last commit.
          const records = values.map((v) => ({ v, run }));
          run++;
          const dataDir = join(dir, `property-${run}`);
          let committed: { state: unknown; id: number; at: number } | undefined;
          // A small local cache (evicting often): a rerun starts without it, a retried batch must not use it.
          const extra: Partial<DedupeOptions> = { fields: ['v', 'run'], local_cache_keys: 3 };
          let instance = await start(client, extra, dataDir);
          let at = 0;
          let out: EtlRecord[] = [];
          let outAtCommit: EtlRecord[] = [];
          let crashes = 0;
          for (let s = 0; at < records.length; s++) {
            const [size, cut, crash] = steps[s % steps.length] as [number, boolean, boolean];
            out.push(...((await instance.transform.process(records.slice(at, at + size))).default ?? []));
            at += size;
            if (cut) {
              const id = (committed?.id ?? 0) + 1;
              committed = { state: instance.cut(), id, at };
              outAtCommit = [...out];
            }
            if (crash && at < records.length && crashes++ < 4) {
              instance = await start(client, extra, dataDir, committed);
              at = committed?.at ?? 0;
              out = [...outAtCommit];
            }
          }
          const seen = new Set<number>();
          const expected = records.filter((r) => !seen.has(r.v) && seen.add(r.v) !== undefined);
          expect(out).toEqual(expected);
        },
      ),
      { numRuns: 60 },
    );
  });

  describe('the local cache of keys this run set', () => {
    /** The Redis key (without the client's prefix) of a record `{ id }`. */
    const redisKey = (id: string) => `dedupe:test/dd:${keyFunction(['id'])({ id })}`;

    it('drops repeats of keys this run set without asking Redis, and forgets them before Redis does', async () => {
      const { client } = await open(REDIS_URL);
      const { client: raw } = await open(REDIS_URL, '');
      const cached = await start(client, { local_cache_keys: 10, window_seconds: 1 });
      const uncached = await start(client, { local_cache_keys: 0, window_seconds: 1 });
      expect(ids(await cached.transform.process(batch('cache-a')))).toEqual(['cache-a']);
      // The key is lost in Redis (a flush, say): the run that set it still knows its record passed; a run
      // without the cache asks Redis and passes the repeat.
      await client.del(redisKey('cache-a'));
      expect(ids(await cached.transform.process(batch('cache-a')))).toEqual([]);
      expect(ids(await uncached.transform.process(batch('cache-a')))).toEqual(['cache-a']);

      expect(ids(await cached.transform.process(batch('cache-b')))).toEqual(['cache-b']);
      expect(ids(await cached.transform.process(batch('cache-b')))).toEqual([]);
      // Once Redis has expired the key, so has the cache (its entries end a margin before the window does).
      await until(async () => (await raw.exists(`${prefix}${redisKey('cache-b')}`)) === 0, 'the key to expire');
      expect(ids(await cached.transform.process(batch('cache-b')))).toEqual(['cache-b']);
      expect(cached.ctx.values.get('etl_dedupe_dropped_total')).toBe(2);
    });

    it('decides as Redis alone does, whatever its size, with instances sharing the server (property)', async () => {
      const { client } = await open(REDIS_URL);
      let scenario = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 1, maxLength: 60 }),
          fc.array(fc.tuple(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 1 })), {
            minLength: 1,
            maxLength: 12,
          }),
          fc.integer({ min: 1, max: 4 }),
          async (values, steps, cacheKeys) => {
            // The same batches, each to one of two instances, once with a cache of `cacheKeys` (evicting often),
            // once without: every batch's output must be the same.
            const outputs = async (local_cache_keys: number): Promise<unknown[][]> => {
              const tag = scenario++;
              const two = [await start(client, { local_cache_keys }), await start(client, { local_cache_keys })];
              const result: unknown[][] = [];
              for (let at = 0, s = 0; at < values.length; s++) {
                const [size, which] = steps[s % steps.length] as [number, number];
                const records = values.slice(at, at + size).map((v) => ({ id: `property-${tag}-${v}` }));
                const out = await (two[which] as Instance).transform.process(records);
                result.push(ids(out).map((id) => String(id).replace(`property-${tag}-`, '')));
                at += size;
              }
              return result;
            };
            expect(await outputs(cacheKeys)).toEqual(await outputs(0));
          },
        ),
        { numRuns: 40 },
      );
    });
  });

  // The local cache is on here: a batch that failed or passed unchecked must have left nothing in it.
  describe('when Redis is down', () => {
    it('not answering: waits (wait), passes unchecked (pass) or fails (fail); a retried batch keeps its records', async () => {
      const server = await ThrowawayRedis.start();
      try {
        const { client } = await open(server.url);
        const wait = await start(client, { on_store_unavailable: 'wait', timeout_seconds: 0.2, local_cache_keys: 10 });
        const pass = await start(client, { on_store_unavailable: 'pass', timeout_seconds: 0.2, local_cache_keys: 10 });
        const fail = await start(client, { on_store_unavailable: 'fail', timeout_seconds: 0.2, local_cache_keys: 10 });
        expect(ids(await wait.transform.process(batch('w1')))).toEqual(['w1']);
        server.pause();

        expect(ids(await pass.transform.process(batch('p1', 'p1', 'w1')))).toEqual(['p1', 'w1']);
        expect(pass.ctx.values.get('etl_dedupe_unchecked_total')).toBe(2);
        await pass.ctx.logged('Redis is unavailable (no answer within 200 ms); records pass unchecked');

        await expect(fail.transform.process(batch('f1', 'w1'))).rejects.toThrow(
          'dedupe dd: Redis is unavailable (no answer within 200 ms; on_store_unavailable: fail)',
        );

        const waiting = wait.transform.process(batch('w1', 'w2', 'p1'));
        await wait.ctx.logged('Redis has not answered for 0.2 s; waiting');
        server.resume();
        // p1: the pass stage's commands, sent before, ran first: it passed p1 and holds the key.
        expect(ids(await waiting)).toEqual(['w2']);

        // The failed batch's commands ran once Redis answered again: its retry is still the first occurrence.
        expect(ids(await fail.transform.process(batch('f1', 'w1')))).toEqual(['f1']);
        expect(ids(await fail.transform.process(batch('f1')))).toEqual([]);
      } finally {
        await server.destroy();
      }
    });

    it('gone: decides at once for pass and fail, waits for it to come back with wait, nothing lost', async () => {
      const server = await ThrowawayRedis.start();
      try {
        const { client } = await open(server.url);
        const wait = await start(client, { on_store_unavailable: 'wait', timeout_seconds: 0.2, local_cache_keys: 10 });
        const pass = await start(client, { on_store_unavailable: 'pass', timeout_seconds: 60, local_cache_keys: 10 });
        const fail = await start(client, { on_store_unavailable: 'fail', timeout_seconds: 60, local_cache_keys: 10 });
        expect(ids(await wait.transform.process(batch('w1')))).toEqual(['w1']);
        const closed = new Promise((resolve) => client.once('close', resolve));
        await server.stop();
        await closed;

        // Without waiting for the (long) timeout: the connection is known to be down.
        expect(ids(await pass.transform.process(batch('p1', 'w1')))).toEqual(['p1', 'w1']);
        await pass.ctx.logged('Redis is unavailable (not connected');
        await expect(fail.transform.process(batch('f1'))).rejects.toThrow(
          'dedupe dd: Redis is unavailable (not connected',
        );

        const waiting = wait.transform.process(batch('w1', 'w2'));
        await wait.ctx.logged('Redis has not answered for 0.2 s; waiting');
        await server.restart();
        expect(ids(await waiting)).toEqual(['w2']);
        expect(ids(await fail.transform.process(batch('f1', 'w2')))).toEqual(['f1']);
      } finally {
        await server.destroy();
      }
    });
  });
});
