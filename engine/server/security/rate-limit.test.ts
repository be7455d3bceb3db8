/** Rate limits per key, counted in Redis, so that two daemons together hold one limit. */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { randomNamespace, REDIS_URL, scratchDatabase, testApi } from '../../../test/support/security-api.ts';
import { SecurityStore } from './store.ts';

const MAX = 6;
let db: { url: string; drop(): Promise<void> };
let store: SecurityStore;
const apps: FastifyInstance[] = [];
const bases: string[] = [];

beforeAll(async () => {
  db = await scratchDatabase();
  store = await SecurityStore.open({ postgresUrl: db.url, dataDir: '.' });
  // Two daemons: the same key store and the same Redis namespace, each its own process state.
  const namespace = randomNamespace();
  for (let i = 0; i < 2; i++) {
    const app = await testApi({ store, rateLimit: { max: MAX, timeWindowMs: 60_000, redis: REDIS_URL, namespace } });
    await app.listen({ host: '127.0.0.1', port: 0 });
    apps.push(app);
    bases.push(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`);
  }
});

afterAll(async () => {
  for (const app of apps) await app.close();
  await store?.close();
  await db?.drop();
});

function get(i: number, path: string, key?: string): Promise<Response> {
  return fetch(`${bases[i % 2]}${path}`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
}

it('answers 429 with Retry-After once a key used its limit across both servers, other keys unaffected', async () => {
  const busy = await store.createKey('busy', 'viewer');
  const calm = await store.createKey('calm', 'viewer');
  for (let i = 0; i < MAX; i++) expect((await get(i, '/pipelines', busy.key)).status, `call ${i}`).toBe(200);
  for (const i of [0, 1]) {
    const refused = await get(i, '/pipelines', busy.key);
    expect(refused.status).toBe(429);
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(((await refused.json()) as { code: string }).code).toBe('ETL_API_RATE_LIMITED');
  }
  // The limit is the key's, not the route's: a forbidden route counts too and answers 429 first.
  expect((await get(0, '/audit', busy.key)).status).toBe(429);
  expect((await get(1, '/pipelines', calm.key)).status).toBe(200);
  // Public routes are never limited, whoever calls them.
  for (let i = 0; i <= MAX; i++) expect((await get(i, i % 2 ? '/healthz' : '/docs/json', busy.key)).status).toBe(200);
});

it('limits requests without a valid key by client address, unknown paths included', async () => {
  const statuses: number[] = [];
  for (let i = 0; i <= MAX; i++) {
    const path = i % 2 === 0 ? '/pipelines' : `/no-such-path-${i}`;
    statuses.push((await get(i, path, `etl_${'0'.repeat(16)}_${'A'.repeat(43)}`)).status);
  }
  expect(statuses).toEqual([...Array(MAX).fill(401), 429]);
});

it('serves without limits when Redis cannot be reached, keys still checked', async () => {
  const key = (await store.createKey('no-redis', 'viewer')).key;
  const app = await testApi({ store, rateLimit: { max: 1, timeWindowMs: 60_000, redis: 'redis://127.0.0.1:1' } });
  try {
    const auth = { authorization: `Bearer ${key}` };
    for (let i = 0; i < 3; i++) {
      expect((await app.inject({ method: 'GET', url: '/pipelines', headers: auth })).statusCode).toBe(200);
    }
    expect((await app.inject({ method: 'GET', url: '/pipelines' })).statusCode).toBe(401);
  } finally {
    await app.close();
  }
});

it('stops hashing wrong secrets for a known key id once the client used its limit', async () => {
  const target = await store.createKey('target', 'admin');
  const app = await testApi({
    store,
    rateLimit: { max: 3, timeWindowMs: 60_000, redis: REDIS_URL, namespace: randomNamespace() },
  });
  try {
    const wrong = `${target.key.slice(0, -1)}${target.key.endsWith('A') ? 'B' : 'A'}`;
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      statuses.push(
        (await app.inject({ url: '/pipelines', headers: { authorization: `Bearer ${wrong}` } })).statusCode,
      );
    }
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    const [last] = await store.queryAudit({ keyId: target.id, limit: 1 });
    expect(last).toMatchObject({ status: 429, outcome: 'rate_limited' });
    expect(last?.reason).toMatch(/was not checked/);
  } finally {
    await app.close();
  }
});
