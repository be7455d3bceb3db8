/**
 * The shared Redis resource, against the real server on 127.0.0.1:6379: stages that name it share one
 * client (with the key prefix), the runtime opens it before the stages and closes it after them, an
 * unreachable server fails the start at once, and options naming resources are checked at validate time.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPipelinesFromString } from '../../../engine/config/load.ts';
import { defineTransform, type OperatorDefinition } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import { runPipeline } from '../../../engine/runtime/run.ts';
import { collected, collectSink, countingSource } from '../../../test/support/operators.ts';
import { pipeline, stage } from '../../../test/support/spec.ts';
import redisResource from './index.ts';
import { ThrowawayRedis } from '../../../test/support/redis-server.ts';
import { REDIS_URL } from '../../../test/support/redis-url.ts';
import { openRedis } from './redis.ts';

const silent = { debug() {}, info() {}, warn() {}, error() {} };

const dir = mkdtempSync(join(tmpdir(), 'etl-redis-resource-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const clients: Redis[] = [];

/** Counts its records in Redis (INCRBY on `seen`) through the shared client named by `redis`. */
const redisCounter = defineTransform({
  type: 'test_redis_counter',
  stability: 'alpha',
  summary: 'counts records in Redis',
  schema: {
    $id: 'test_redis_counter',
    type: 'object',
    additionalProperties: false,
    properties: { redis: { type: 'string' } },
  } as const,
  examples: [],
  accepts: ['any'],
  outputs: { default: 'any' },
  uses: (options: { redis: string }) => [{ path: ['redis'], name: options.redis, type: 'redis' }],
  create(options: { redis: string }, ctx) {
    const client = ctx.resource<Redis>(options.redis);
    clients.push(client);
    return {
      async process(records: EtlRecord[]) {
        await client.incrby('seen', records.length);
        return { default: records };
      },
    };
  },
});

const prefix = `etl-test-${process.pid}-${Date.now()}:`;
const resource = (url = REDIS_URL) => ({
  name: 'cache',
  type: 'redis',
  definition: redisResource,
  options: { url, key_prefix: prefix, connect_timeout_seconds: 2 },
  position: { file: 't.yaml', line: 1, column: 1 },
});

describe('redis resource', () => {
  it('is one client for every stage that names it, opened before them and closed after them', async () => {
    const spec = {
      ...pipeline('shared', join(dir, 'a'), [
        stage({ id: 'src', def: countingSource, options: { count: 500, batch: 50 } }),
        stage({ id: 'a', def: redisCounter as OperatorDefinition, inputs: ['src'], options: { redis: 'cache' } }),
        stage({ id: 'b', def: redisCounter as OperatorDefinition, inputs: ['a'], options: { redis: 'cache' } }),
        stage({ id: 'out', def: collectSink, inputs: ['b'], options: { name: 'redis-out' } }),
      ]),
      resources: [resource()],
    };
    const result = await runPipeline(spec);
    expect(result.ok, String(result.error)).toBe(true);
    expect(collected.get('redis-out')).toHaveLength(500);
    expect(clients).toHaveLength(2);
    expect(clients[0]).toBe(clients[1]);
    expect(clients[0]?.status).toBe('end');
    const { Redis } = await import('ioredis');
    const check = new Redis(REDIS_URL);
    try {
      expect(await check.get(`${prefix}seen`)).toBe('1000');
      await check.del(`${prefix}seen`);
    } finally {
      check.disconnect();
    }
  });

  it('waits for a server that is still starting, up to connect_timeout_seconds', async () => {
    const server = await ThrowawayRedis.unstarted();
    try {
      const opening = openRedis(
        { url: server.url, key_prefix: prefix, connect_timeout_seconds: 60 },
        { pipeline: 'p', name: 'cache', logger: silent, baseDir: dir, signal: new AbortController().signal },
      );
      await server.restart(); // refused until now
      const open = await opening;
      expect(await open.client.ping()).toBe('PONG');
      await open.close();
    } finally {
      await server.stop();
    }
  });

  it('fails the start once connect_timeout_seconds have passed, naming the server and the cause', async () => {
    const server = await ThrowawayRedis.unstarted(); // a free port nobody listens on
    await expect(
      openRedis(
        { url: server.url, key_prefix: prefix, connect_timeout_seconds: 1 },
        { pipeline: 'p', name: 'cache', logger: silent, baseDir: dir, signal: new AbortController().signal },
      ),
    ).rejects.toThrow(`resource cache: cannot reach Redis at ${server.url} within 1 s: connect ECONNREFUSED`);
  });

  it('fails the start, naming the server, when it cannot be reached', async () => {
    const spec = {
      ...pipeline('unreachable', join(dir, 'b'), [
        stage({ id: 'src', def: countingSource, options: { count: 10 } }),
        stage({ id: 'a', def: redisCounter as OperatorDefinition, inputs: ['src'], options: { redis: 'cache' } }),
        stage({ id: 'out', def: collectSink, inputs: ['a'], options: { name: 'never' } }),
      ]),
      resources: [resource('redis://user:secret@127.0.0.1:1')],
    };
    const result = await runPipeline(spec);
    expect(result.ok).toBe(false);
    expect(String(result.error)).toContain('resource cache: cannot reach Redis at redis://user:***@127.0.0.1:1');
    expect(String(result.error)).not.toContain('secret');
    expect(collected.get('never')).toBeUndefined();
  });

  it('checks at validate time that options name a declared resource of their type', async () => {
    const registry = [
      ...(await import('../../all.ts')).registry,
      redisCounter as OperatorDefinition,
    ] as readonly OperatorDefinition[];
    const yaml = (resources: string, uses: string) => `apiVersion: etl/v1
kind: Pipeline
metadata: { name: uses }
spec:
  resources:
${resources}
  sources:
    gen: { type: generator, count: 1 }
  operators:
    count: { type: test_redis_counter, inputs: [gen], redis: ${uses} }
  sinks:
    out: { type: blackhole, inputs: [count] }
`;
    const load = (text: string) =>
      loadPipelinesFromString(text, 'uses.yaml', { registry, resources: [redisResource], env: {} });
    const ok = await load(yaml(`    cache: { type: redis, url: "${REDIS_URL}" }`, 'cache'));
    expect(ok.diagnostics).toEqual([]);
    expect(ok.pipelines[0]?.resources.map((r) => [r.name, r.type, r.options.key_prefix])).toEqual([
      ['cache', 'redis', ''],
    ]);
    const misspelt = await load(yaml('    cache: { type: redis }', 'cahce'));
    expect(misspelt.diagnostics.map((d) => [d.line, d.column, d.message])).toEqual([
      [10, 62, '`cahce` names no shared resource — did you mean `cache`?'],
    ]);
    const unknownType = await load(yaml('    cache: { type: redsi }', 'cache'));
    expect(unknownType.diagnostics.map((d) => d.message)).toEqual([
      'unknown resource type `redsi`; known: redis — did you mean `redis`?',
    ]);
  });
});
