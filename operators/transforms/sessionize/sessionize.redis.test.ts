/**
 * sessionize with `store: redis`, against the real Redis on 127.0.0.1:6379 (a key prefix of the test's own):
 * instances sharing the server continue each other's sessions, and a rerun after a crash assigns the ids and
 * sequence numbers the first attempt did, whether what it replays had been written by a snapshot that committed
 * or not.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { OpenResource } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import { silentLogger } from '../../../engine/runtime/noop.ts';
import { recordingContext } from '../../../test/support/context.ts';
import { KeyedStore } from '../../../test/support/keyed-store.ts';
import { REDIS_URL } from '../../../test/support/redis-url.ts';
import { openRedis } from '../../resources/redis/redis.ts';
import definition from './index.ts';
import type { SessionizeOptions } from './schema.ts';
import { SessionizeTransform, sessionId } from './sessionize.ts';

const prefix = `etl-test-sessionize-${process.pid}-${Date.now()}:`;
const dir = mkdtempSync(join(tmpdir(), 'etl-sessionize-redis-'));
const opened: OpenResource<Redis>[] = [];

afterAll(async () => {
  const check = await open('');
  const keys = await check.client.keys(`${prefix}*`);
  if (keys.length > 0) await check.client.del(...keys);
  for (const resource of opened) await resource.close();
  rmSync(dir, { recursive: true, force: true });
});

async function open(keyPrefix = prefix): Promise<OpenResource<Redis>> {
  const resource = await openRedis(
    { url: REDIS_URL, key_prefix: keyPrefix, connect_timeout_seconds: 5 },
    { pipeline: 'test', name: 'sessions', logger: silentLogger, baseDir: dir, signal: new AbortController().signal },
  );
  opened.push(resource);
  return resource;
}

const OPTIONS = definition.examples[2] as SessionizeOptions;
const T0 = Date.parse('2026-03-01T10:00:00.000Z');
const minutes = (n: number) => n * 60_000;
const hit = (ip: string, at: number): EtlRecord => ({
  client_ip: ip,
  user_agent: 'UA',
  timestamp: new Date(at).toISOString(),
});
const key = (ip: string) => JSON.stringify([ip, 'UA']);

let instances = 0;

/** One run of a sessionize stage on `dataDir` (an instance), resuming from `resumeFrom` when given. */
async function start(
  client: Redis,
  dataDir = join(dir, `instance-${instances++}`),
  resumeFrom?: { state: unknown; id: number },
) {
  mkdirSync(dataDir, { recursive: true });
  let snapshot = (resumeFrom?.id ?? 0) + 1;
  const store = new KeyedStore();
  const ctx = recordingContext({
    id: 'visits',
    dataDir,
    resource: <T>() => client as T,
    snapshotId: () => snapshot,
    keyed: <V>(name: string) => store.keyed<V>(name),
  });
  const transform = new SessionizeTransform(OPTIONS, ctx);
  await transform.open();
  transform.restore(resumeFrom?.state);
  const run = async (records: EtlRecord[]) =>
    ((await transform.process(records)).default ?? []).map((r) => [r.session_id, r.session_seq]);
  return {
    dataDir,
    run,
    /** Cuts the snapshot the records so far belong to; its state, as the checkpoint would hold it. */
    cut: () => transform.snapshot({ id: snapshot++, positions: {} }),
    commit: (id: number) => transform.commit?.({ id, positions: {} }),
  };
}

describe('sessionize (Redis store)', () => {
  it('continues a visitor\u2019s session on whichever instance sees its next request', async () => {
    const { client } = await open();
    const a = await start(client);
    const b = await start(client);
    const first = sessionId(key('1.1.1.1'), T0);
    expect(await a.run([hit('1.1.1.1', T0), hit('2.2.2.2', T0 + 5), hit('1.1.1.1', T0 + minutes(5))])).toEqual([
      [first, 1],
      [sessionId(key('2.2.2.2'), T0 + 5), 1],
      [first, 2],
    ]);
    // The other instance sees the same visitor 20 minutes later: the same session goes on.
    expect(await b.run([hit('1.1.1.1', T0 + minutes(25))])).toEqual([[first, 3]]);
    // More than the gap (30 min) after: a new session, on either instance.
    expect(await a.run([hit('1.1.1.1', T0 + minutes(56))])).toEqual([[sessionId(key('1.1.1.1'), T0 + minutes(56)), 1]]);
    const { client: raw } = await open('');
    const stored = await raw.keys(`${prefix}session:test/visits:*`);
    expect(stored).toHaveLength(2);
    const ttl = await raw.pttl(stored[0] as string);
    expect(ttl).toBeGreaterThan(minutes(30));
    expect(ttl).toBeLessThanOrEqual(minutes(30) + minutes(1) + minutes(1));
  });

  it('after a crash, assigns what the first attempt did to the records it replays', async () => {
    const { client } = await open();
    const first = await start(client);
    const s = sessionId(key('3.3.3.3'), T0);
    expect(await first.run([hit('3.3.3.3', T0), hit('3.3.3.3', T0 + 1000)])).toEqual([
      [s, 1],
      [s, 2],
    ]);
    const committed = first.cut(); // snapshot 1 …
    await first.commit(1); // … commits
    expect(await first.run([hit('3.3.3.3', T0 + 2000)])).toEqual([[s, 3]]);
    first.cut(); // snapshot 2 is cut, never committed: killed
    expect(await first.run([hit('3.3.3.3', T0 + 3000)])).toEqual([[s, 4]]);
    // The rerun resumes after snapshot 1 and reads the records after it again: the same numbers, not 5 and 6.
    const rerun = await start(client, first.dataDir, { state: committed, id: 1 });
    expect(await rerun.run([hit('3.3.3.3', T0 + 2000), hit('3.3.3.3', T0 + 3000)])).toEqual([
      [s, 3],
      [s, 4],
    ]);
    // Killed again before committing: a second rerun from the same cut, the same answers.
    const again = await start(client, first.dataDir, { state: committed, id: 1 });
    expect(await again.run([hit('3.3.3.3', T0 + 2000)])).toEqual([[s, 3]]);
    // Once that run commits, the next one goes on from it.
    const state = again.cut();
    await again.commit(2);
    const later = await start(client, first.dataDir, { state, id: 2 });
    expect(await later.run([hit('3.3.3.3', T0 + 4000)])).toEqual([[s, 4]]);
  });

  it('keeps another instance\u2019s committed work when its own dead run had written the key before', async () => {
    const { client } = await open();
    const a = await start(client);
    const s = sessionId(key('4.4.4.4'), T0);
    const committed = a.cut(); // nothing yet: snapshot 1 commits empty
    await a.commit(1);
    expect(await a.run([hit('4.4.4.4', T0)])).toEqual([[s, 1]]); // snapshot 2, never committed
    // Another instance continues the session and commits.
    const b = await start(client);
    expect(await b.run([hit('4.4.4.4', T0 + 1000)])).toEqual([[s, 2]]);
    // a's rerun replays its record: the key is b's now, which it continues (b's work is never undone).
    const rerun = await start(client, a.dataDir, { state: committed, id: 1 });
    expect(await rerun.run([hit('4.4.4.4', T0)])).toEqual([[s, 3]]);
  });

  it('is refused by etl validate without a redis resource', () => {
    const problems = definition.validate?.({ ...OPTIONS, redis: undefined } as SessionizeOptions, {
      inputSchema: undefined,
    });
    expect(problems?.map((p) => p.path)).toEqual([['store']]);
  });
});
