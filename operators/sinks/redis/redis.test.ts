/**
 * The redis sink against the real Redis on 127.0.0.1:6379 (a key prefix of the test's own): each mode
 * writes what it says, key templates, records it cannot write dead-lettered with the reason, a misspelt
 * field refused at validate time with its line and column, and an outage of a throwaway `redis-server`
 * holding writes until it is back, with nothing lost.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPipelinesFromString } from '../../../engine/config/load.ts';
import type { CircuitState, OpenResource, Sink, StageSignals } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import { silentLogger } from '../../../engine/runtime/noop.ts';
import type { OperatorDefinition } from '../../../engine/operator.ts';
import { runPipeline } from '../../../engine/runtime/run.ts';
import { type RecordingContext, recordingContext } from '../../../test/support/context.ts';
import { countingSource, sourceLog } from '../../../test/support/operators.ts';
import { pipeline, stage } from '../../../test/support/spec.ts';
import redisResource from '../../resources/redis/index.ts';
import { ThrowawayRedis } from '../../../test/support/redis-server.ts';
import { registry, resources } from '../../all.ts';
import { openRedis } from '../../resources/redis/redis.ts';
import definition from './index.ts';
import { createRedisSink } from './redis.ts';
import type { RedisSinkOptions } from './schema.ts';
import { parseTemplate } from '../../shared/template.ts';
import { REDIS_URL } from '../../../test/support/redis-url.ts';

const prefix = `etl-test-redis-sink-${process.pid}-${Date.now()}:`;
const dir = mkdtempSync(join(tmpdir(), 'etl-redis-sink-'));
const opened: OpenResource<Redis>[] = [];

afterAll(async () => {
  const raw = await open(REDIS_URL, '');
  const keys = await raw.keys(`${prefix}*`);
  if (keys.length > 0) await raw.del(...keys);
  for (const resource of opened) await resource.close();
  rmSync(dir, { recursive: true, force: true });
});

async function open(url: string, keyPrefix = prefix): Promise<Redis> {
  const resource = await openRedis(
    { url, key_prefix: keyPrefix, connect_timeout_seconds: 5 },
    { pipeline: 'test', name: 'cache', logger: silentLogger, baseDir: dir, signal: new AbortController().signal },
  );
  opened.push(resource);
  return resource.client;
}

async function sink(
  client: Redis,
  options: Partial<RedisSinkOptions>,
  signals?: StageSignals,
): Promise<{ sink: Sink; ctx: RecordingContext; write(records: EtlRecord[]): Promise<string[]> }> {
  const ctx = recordingContext({ id: 'out', resource: <T>() => client as T, ...(signals ? { signals } : {}) });
  const sink = await createRedisSink({ ...(definition.examples[0] as RedisSinkOptions), ...options }, ctx);
  await sink.open?.();
  return {
    sink,
    ctx,
    async write(records) {
      const refused: string[] = [];
      await sink.write(records, {
        deadLetter: (record, reason) => refused.push(`${JSON.stringify(record)}: ${reason}`),
      });
      return refused;
    },
  };
}

describe('key templates', () => {
  it('fill in field values, keep doubled braces literal, percent-encode on request, and refuse stray braces', () => {
    expect(parseTemplate('web:{host}:{path}').render({ host: 'a.example', path: '/x' })).toEqual({
      key: 'web:a.example:/x',
    });
    expect(parseTemplate('{{x}}:{n}').render({ n: 3 })).toEqual({ key: '{x}:3' });
    expect(parseTemplate('t:{a}', 'percent').render({ a: 'x:y {z}%' })).toEqual({ key: 't:x%3Ay%20%7Bz%7D%25' });
    expect(parseTemplate('t:{a}').render({ a: null })).toEqual({ missing: 'a' });
    expect(() => parseTemplate('t:{a')).toThrow('`{` at 3 opens no `{field}`');
    expect(() => parseTemplate('t:a}')).toThrow('`}` at 4 closes nothing');
  });
});

describe('redis sink', () => {
  it('stream: XADDs one entry per record into the templated key, trimmed to about max_len', async () => {
    const client = await open(REDIS_URL);
    const out = await sink(client, { mode: 'stream', key: 's:{vhost}', max_len: 100 });
    const records = Array.from({ length: 300 }, (_, i) => ({ vhost: i % 2 ? 'a' : 'b', i, tags: ['x'], gone: null }));
    expect(await out.write(records)).toEqual([]);
    const entries = await client.xrange('s:a', '-', '+');
    // MAXLEN ~ trims whole macro nodes: about max_len entries, never fewer.
    expect(entries.length).toBeGreaterThanOrEqual(100);
    expect(entries.length).toBeLessThanOrEqual(200);
    expect(entries.at(-1)?.[1]).toEqual(['vhost', 'a', 'i', '299', 'tags', '["x"]']);
  });

  it('hash: HSETs the chosen fields, with a TTL; stream and hash refuse records lacking a key field', async () => {
    const client = await open(REDIS_URL);
    const out = await sink(client, {
      mode: 'hash',
      key: 'h:{client_ip}',
      fields: ['status', 'path'],
      ttl_seconds: 60,
    });
    const refused = await out.write([
      { client_ip: '192.0.2.1', status: 200, path: '/a', other: 1 },
      { client_ip: '192.0.2.1', status: 404 },
      { status: 500 },
    ]);
    expect(refused).toEqual(['{"status":500}: the key template needs `client_ip`, which the record lacks']);
    expect(await client.hgetall('h:192.0.2.1')).toEqual({ status: '404', path: '/a' });
    const ttl = await client.pttl('h:192.0.2.1');
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it('zincrby: counts per member for a live top-N; a wrong-type key refuses only its records', async () => {
    const client = await open(REDIS_URL);
    const out = await sink(client, { mode: 'zincrby', key: 'top:{vhost}', member: '{path}', increment_field: 'bytes' });
    await client.set('top:taken', 'a string');
    const refused = await out.write([
      { vhost: 'a', path: '/x', bytes: 10 },
      { vhost: 'a', path: '/y', bytes: 5 },
      { vhost: 'a', path: '/x', bytes: 7 },
      { vhost: 'taken', path: '/x', bytes: 1 },
      { vhost: 'a', path: '/z', bytes: 'many' },
    ]);
    expect(refused).toHaveLength(2);
    // Records refused before the round trip are said first, those Redis refused after it.
    expect(refused[0]).toContain('`bytes` is not a number');
    expect(refused[1]).toContain('WRONGTYPE');
    expect(await client.zrevrange('top:a', 0, -1, 'WITHSCORES')).toEqual(['/x', '17', '/y', '5']);
  });

  it('publish: sends each record as JSON on the channel', async () => {
    const client = await open(REDIS_URL);
    const subscriber = client.duplicate();
    try {
      const received: string[] = [];
      const all = new Promise<void>((resolve) =>
        subscriber.on('message', (_channel: string, message: string) => {
          received.push(message);
          if (received.length === 2) resolve();
        }),
      );
      await subscriber.subscribe(`${prefix}live:a`);
      const out = await sink(client, { mode: 'publish', key: 'live:{vhost}' });
      await out.write([
        { vhost: 'a', n: 1 },
        { vhost: 'a', n: 2 },
      ]);
      await all;
      expect(received.map((m) => JSON.parse(m))).toEqual([
        { vhost: 'a', n: 1 },
        { vhost: 'a', n: 2 },
      ]);
    } finally {
      subscriber.disconnect();
    }
  });

  it('refuses a misspelt field in the key template at its line and column', async () => {
    const yaml = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: to-redis }
spec:
  resources:
    cache: { type: redis }
  sources:
    gen: { type: generator, count: 1 }
  operators:
    parsed: { type: parse, inputs: [gen] }
  sinks:
    out: { type: redis, inputs: [parsed], redis: cache, mode: hash, key: "c:{cleint_ip}" }
`;
    const loaded = await loadPipelinesFromString(yaml, 'x.yaml', { registry, resources, env: {} });
    expect(loaded.diagnostics.map((d) => [d.line, d.column, d.message])).toEqual([
      [12, 74, 'unknown field `cleint_ip` — did you mean `client_ip`?'],
    ]);
  });

  it('holds writes while Redis is down and writes them once it is back, losing nothing', async () => {
    const server = await ThrowawayRedis.start();
    try {
      const client = await open(server.url);
      // What the runtime's etl_sink_circuit_state and etl_sink_reconnects_total are told.
      const circuit: CircuitState[] = [];
      let reconnected = 0;
      const signals: StageSignals = {
        reconnected: () => reconnected++,
        circuit: (state) => circuit.push(state),
        sourceState: () => {},
      };
      const out = await sink(client, { mode: 'stream', key: 'outage', warn_after_seconds: 0.1 }, signals);
      await out.write([{ n: 0 }]);
      await server.stop();
      const held = out.write([{ n: 1 }, { n: 2 }]);
      await out.ctx.logged('Redis has not answered for 0.1 s; the pipeline waits');
      await server.restart();
      expect(await held).toEqual([]);
      expect(circuit).toEqual(['open', 'closed']);
      expect(reconnected).toBe(1);
      await out.write([{ n: 3 }]);
      const entries = await client.xrange('outage', '-', '+');
      expect(entries.map((e) => e[1])).toEqual([
        ['n', '0'],
        ['n', '1'],
        ['n', '2'],
        ['n', '3'],
      ]);
    } finally {
      await server.destroy();
    }
  });

  it('in a pipeline, an outage holds the source back until Redis is back, and every record lands', async () => {
    const server = await ThrowawayRedis.start();
    try {
      const client = await open(server.url);
      const count = 20_000;
      const log = recordingContext();
      const spec = {
        ...pipeline('redis-outage', join(dir, 'outage'), [
          stage({ id: 'src', def: countingSource, options: { count, batch: 100 } }),
          stage({
            id: 'out',
            def: definition as OperatorDefinition,
            inputs: ['src'],
            options: { ...definition.examples[0], mode: 'stream', key: 'piped', warn_after_seconds: 0.2 },
          }),
        ]),
        resources: [
          {
            name: 'cache',
            type: 'redis',
            definition: redisResource,
            options: { url: server.url, key_prefix: prefix, connect_timeout_seconds: 5 },
            position: { file: 'test.yaml', line: 1, column: 1 },
          },
        ],
      };
      const emitted = () => sourceLog.filter((e) => e.source === 'src').at(-1)?.emitted ?? 0;
      const running = runPipeline(spec, { logger: () => log.logger });
      while (emitted() < 2000) await new Promise((resolve) => setImmediate(resolve));
      await server.stop();
      const atStop = emitted();
      await log.logged('Redis has not answered for 0.2 s; the pipeline waits');
      // Held: no further than the batches in flight when Redis went away (credit per stage, 4 batches).
      expect(emitted()).toBeLessThan(count);
      expect(emitted() - atStop).toBeLessThanOrEqual(1000);
      await server.restart();
      const result = await running;
      expect(result.ok, String(result.error)).toBe(true);
      const entries = await client.xrange('piped', '-', '+');
      // At least once: a batch sent again after the connection dropped may be there twice; none is missing.
      const ids = new Set(entries.map((e) => e[1][1]));
      expect(ids.size).toBe(count);
      expect(entries.length).toBeGreaterThanOrEqual(count);
    } finally {
      await server.destroy();
    }
  });
});
