/**
 * etl serve with the real security layer (engine/server/security): keys, roles of the daemon's own routes,
 * public probes and docs, the audit log of its mutating calls; PostgreSQL and Redis of the test machine.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { securityLayer } from '../../engine/server/security/index.ts';
import { SecurityStore } from '../../engine/server/security/store.ts';
import { randomNamespace, REDIS_URL, scratchDatabase } from '../support/security-api.ts';
import { daemon } from './helpers.ts';

let db: { url: string; drop(): Promise<void> };
let store: SecurityStore;

beforeAll(async () => {
  db = await scratchDatabase();
  store = await SecurityStore.open({ postgresUrl: db.url, dataDir: '.' });
});

afterAll(async () => {
  await store?.close();
  await db?.drop();
});

it("checks keys and roles on the daemon's routes and audits its mutating calls", async () => {
  const auth = async (role: 'viewer' | 'operator' | 'admin') => ({
    authorization: `Bearer ${(await store.createKey(role, role)).key}`,
  });
  const [viewer, operator, admin] = [await auth('viewer'), await auth('operator'), await auth('admin')];
  const d = await daemon({
    security: securityLayer({
      store,
      rateLimit: { max: 1000, timeWindowMs: 60_000, redis: REDIS_URL, namespace: randomNamespace() },
    }),
  });
  try {
    for (const path of ['/healthz', '/readyz', '/docs/json'])
      expect((await d.call('GET', path)).status, path).toBe(200);
    expect((await d.call('GET', '/pipelines')).status).toBe(401);
    expect((await d.call('GET', '/pipelines', undefined, viewer)).status).toBe(200);
    expect((await d.call('GET', '/metrics', undefined, viewer)).status).toBe(200);
    expect((await d.call('POST', '/pipelines/web/stop', undefined, viewer)).status).toBe(403);
    expect((await d.call('POST', '/pipelines/web/stop', undefined, operator)).status).toBe(404);
    expect((await d.call('POST', '/pipelines/..%2Fetc/stop', undefined, operator)).status).toBe(400);
    const dryRun = await d.call('POST', '/pipelines?dryRun=true', 'name: x\n', operator);
    expect(dryRun.status).toBe(422);
    expect((await d.call('GET', '/audit', undefined, operator)).status).toBe(403);
    const audit = await d.call('GET', '/audit?method=POST', undefined, admin);
    expect(audit.status).toBe(200);
    const seen = (audit.body.entries as Array<{ path: string; status: number; keyName: string | null }>).map(
      (e) => `${e.path} ${e.status} ${e.keyName}`,
    );
    expect(seen).toEqual([
      '/pipelines?dryRun=true 422 operator',
      '/pipelines/..%2Fetc/stop 400 operator',
      '/pipelines/web/stop 404 operator',
      '/pipelines/web/stop 403 viewer',
    ]);
  } finally {
    await d.shutdown();
  }
});

it('lets the daemon listen beyond loopback once the layer allows it', async () => {
  const d = await daemon({
    host: '0.0.0.0',
    security: securityLayer({ store, rateLimit: { max: 1000, timeWindowMs: 60_000 }, allowPlainHttp: true }),
  });
  try {
    expect(d.host).toBe('0.0.0.0');
    expect(d.log()).not.toContain('no security layer');
  } finally {
    await d.shutdown();
  }
});
