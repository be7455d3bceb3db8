/**
 * The security layer on a real server on loopback, with the real PostgreSQL (keys, audit) and Redis
 * (rate limits) of the test machine.
 */
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomNamespace, REDIS_URL, scratchDatabase, testApi } from '../../../test/support/security-api.ts';
import { registerSecurity } from './plugin.ts';
import { SecurityStore } from './store.ts';

const SECRET = 's3cr3t-value-42';

let db: { url: string; drop(): Promise<void> };
let store: SecurityStore;
let app: FastifyInstance;
let base: string;
const keys: Record<'viewer' | 'operator' | 'admin', string> = { viewer: '', operator: '', admin: '' };

beforeAll(async () => {
  db = await scratchDatabase();
  store = await SecurityStore.open({ postgresUrl: db.url, dataDir: '.' });
  for (const role of ['viewer', 'operator', 'admin'] as const) keys[role] = (await store.createKey(role, role)).key;
  app = await testApi({
    store,
    rateLimit: { max: 10_000, timeWindowMs: 60_000, redis: REDIS_URL, namespace: randomNamespace() },
    secrets: () => [SECRET],
    secret: SECRET,
    bodyLimitBytes: 64 * 1024,
    maxJsonDepth: 16,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await app?.close();
  await store?.close();
  await db?.drop();
});

function call(
  method: string,
  path: string,
  key?: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${base}${path}`, {
    method,
    headers: {
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body } : {}),
  });
}

describe('authentication', () => {
  it('answers 401 without a key, with a malformed, unknown, wrong or revoked one', async () => {
    const revoked = await store.createKey('gone', 'admin');
    await store.revokeKey(revoked.id);
    const wrongSecret = `${keys.admin.slice(0, -1)}${keys.admin.endsWith('A') ? 'B' : 'A'}`;
    const unknown = `etl_0123456789abcdef_${'A'.repeat(43)}`;
    for (const key of [undefined, 'hello', unknown, wrongSecret, revoked.key]) {
      const response = await call('GET', '/pipelines', key);
      expect(response.status, String(key)).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Bearer realm="etl"');
      const body = (await response.json()) as { code: string; message: string };
      expect(body.code).toBe('ETL_API_UNAUTHENTICATED');
      // The client is not told which part was wrong.
      expect(body.message).not.toMatch(/revoked|unknown|secret/);
    }
  });

  it('takes the key as a Bearer token or an X-API-Key header', async () => {
    expect((await call('GET', '/pipelines', keys.viewer)).status).toBe(200);
    expect((await call('GET', '/pipelines', undefined, undefined, { 'x-api-key': keys.viewer })).status).toBe(200);
  });

  it('lets public routes through without a key, and answers 401 rather than 404 to a stranger', async () => {
    expect((await call('GET', '/healthz')).status).toBe(200);
    expect((await call('GET', '/docs/json')).status).toBe(200);
    expect((await call('GET', '/no/such/path')).status).toBe(401);
    expect((await call('GET', '/no/such/path', keys.viewer)).status).toBe(404);
  });

  it('refuses a key revoked while the server runs, at its next request', async () => {
    const made = await store.createKey('short-lived', 'viewer');
    expect((await call('GET', '/pipelines', made.key)).status).toBe(200);
    await store.revokeKey(made.id);
    expect((await call('GET', '/pipelines', made.key)).status).toBe(401);
  });
});

describe('roles', () => {
  it('checks the role of every route, admin ⊇ operator ⊇ viewer', async () => {
    const cases: Array<[string, string, keyof typeof keys, number]> = [
      ['GET', '/pipelines', 'viewer', 200],
      ['POST', '/pipelines/web', 'viewer', 403],
      ['POST', '/pipelines/web', 'operator', 200],
      ['POST', '/pipelines/web', 'admin', 200],
      ['DELETE', '/pipelines/web', 'operator', 403],
      ['DELETE', '/pipelines/web', 'admin', 200],
      ['GET', '/audit', 'operator', 403],
      ['GET', '/keys', 'viewer', 403],
    ];
    for (const [method, path, role, status] of cases) {
      const response = await call(method, path, keys[role], method === 'POST' ? '{}' : undefined);
      expect(response.status, `${method} ${path} as ${role}`).toBe(status);
      if (status === 403) expect(((await response.json()) as { code: string }).code).toBe('ETL_API_FORBIDDEN');
    }
  });

  it('answers HEAD like GET', async () => {
    expect((await call('HEAD', '/pipelines', keys.viewer)).status).toBe(200);
    expect((await call('HEAD', '/pipelines')).status).toBe(401);
  });

  it('refuses every call to a route declared before the security layer', async () => {
    const early = Fastify();
    early.get('/early', async () => ({ leaked: true }));
    await registerSecurity(early, { store, rateLimit: { max: 100, timeWindowMs: 60_000 } });
    try {
      const response = await early.inject({
        method: 'GET',
        url: '/early',
        headers: { authorization: `Bearer ${keys.admin}` },
      });
      expect(response.statusCode).toBe(500);
      expect(response.json()).toMatchObject({ code: 'ETL_API_UNSECURED_ROUTE' });
    } finally {
      await early.close();
    }
  });

  it('refuses a mutating route that declares no role, even to an admin', async () => {
    const response = await call('POST', '/unmarked', keys.admin, '{}');
    expect(response.status).toBe(403);
    expect(((await response.json()) as { message: string }).message).toMatch(/declares no role/);
  });
});

describe('bodies', () => {
  it('answers 4xx to malformed, oversized, deeply nested and prototype-polluting JSON, and keeps serving', async () => {
    const malformed = await call('POST', '/pipelines/web', keys.operator, '{"a": ');
    expect(malformed.status).toBe(400);
    const oversized = await call('POST', '/pipelines/web', keys.operator, JSON.stringify({ a: 'x'.repeat(70_000) }));
    expect(oversized.status).toBe(413);
    const deep = await call('POST', '/pipelines/web', keys.operator, `${'['.repeat(100_000)}${']'.repeat(100_000)}`);
    expect(deep.status).toBe(413);
    const nested = await call('POST', '/pipelines/web', keys.operator, `${'['.repeat(17)}${']'.repeat(17)}`);
    expect(nested.status).toBe(400);
    expect(((await nested.json()) as { code: string }).code).toBe('ETL_API_BODY_TOO_DEEP');
    const brackets = await call('POST', '/pipelines/web', keys.operator, JSON.stringify({ s: '[[[[[[[[[[[[[[[[[[[[' }));
    expect(brackets.status).toBe(200);
    const proto = await call('POST', '/pipelines/web', keys.operator, '{"__proto__": {"admin": true}}');
    expect(proto.status).toBe(400);
    const okDepth = await call('POST', '/pipelines/web', keys.operator, `${'['.repeat(16)}${']'.repeat(16)}`);
    expect(okDepth.status).toBe(200);
    expect((await call('GET', '/healthz')).status).toBe(200);
  });

  it('rejects pipeline names that would leave their directory', async () => {
    for (const name of ['..', '..%2F..%2Fetc%2Fpasswd', '.hidden', '-rf', 'a%00b', 'a%5Cb', 'x'.repeat(129)]) {
      const response = await call('POST', `/pipelines/${name}`, keys.operator, '{}');
      expect(response.status, name).toBeGreaterThanOrEqual(400);
      expect(response.status, name).toBeLessThan(500);
    }
    expect((await call('POST', '/pipelines/web-logs_2', keys.operator, '{}')).status).toBe(200);
  });
});

describe('secrets', () => {
  it('masks secrets and keys in answers and errors, and tells nothing of a 500', async () => {
    const config = await (await call('GET', '/config', keys.viewer)).text();
    expect(config).not.toContain(SECRET);
    expect(config).toContain('***');
    const boom = await call('GET', '/boom', keys.viewer);
    expect(boom.status).toBe(500);
    const text = await boom.text();
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain('postgres://');
    const bad = await call('POST', '/bad', keys.operator, '{}');
    expect(bad.status).toBe(422);
    expect(await bad.text()).toContain('refused value ***');
  });

  it('sets security headers and forbids caching', async () => {
    const response = await call('GET', '/pipelines', keys.viewer);
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(response.headers.get('strict-transport-security')).toContain('max-age=');
    expect(response.headers.get('cache-control')).toBe('no-store');
  });
});

describe('keys through the API', () => {
  it('lets an admin create, list and revoke a key, shown once', async () => {
    const created = await call('POST', '/keys', keys.admin, JSON.stringify({ name: 'ci', role: 'operator' }));
    expect(created.status).toBe(201);
    const made = (await created.json()) as { id: string; key: string; role: string };
    expect(made.key).toMatch(/^etl_[0-9a-f]{16}_/);
    expect((await call('POST', '/pipelines/web', made.key, '{}')).status).toBe(200);
    const list = (await (await call('GET', '/keys', keys.admin)).json()) as Array<{ id: string; key?: string }>;
    expect(list.map((k) => k.id)).toContain(made.id);
    expect(JSON.stringify(list)).not.toMatch(/etl_[0-9a-f]{16}_|scrypt/);
    expect((await call('DELETE', `/keys/${made.id}`, keys.admin)).status).toBe(200);
    const missing = await call('DELETE', '/keys/ffffffffffffffff', keys.admin);
    expect([missing.status, ((await missing.json()) as { code: string }).code]).toEqual([404, 'ETL_API_NO_SUCH_KEY']);
    expect((await call('POST', '/pipelines/web', made.key, '{}')).status).toBe(401);
    expect((await call('POST', '/keys', keys.operator, JSON.stringify({ name: 'x', role: 'admin' }))).status).toBe(403);
  });
});

describe('audit', () => {
  it('records every mutating call and every refused one, for admins to query', async () => {
    const marker = `audit-${Date.now()}`;
    const calls: Array<[string, string, string | undefined, number]> = [
      ['POST', `/pipelines/${marker}`, keys.operator, 200],
      ['DELETE', `/pipelines/${marker}`, keys.admin, 200],
      ['DELETE', `/pipelines/${marker}`, keys.operator, 403],
      ['POST', `/pipelines/${marker}`, undefined, 401],
      ['GET', `/unknown-${marker}?dryRun=true`, 'etl_garbage', 401],
      ['POST', '/unmarked', keys.admin, 403],
    ];
    for (const [method, path, key, status] of calls) {
      expect((await call(method, path, key, method === 'POST' ? '{}' : undefined)).status).toBe(status);
    }
    const response = await call('GET', '/audit?limit=1000', keys.admin);
    expect(response.status).toBe(200);
    const { entries } = (await response.json()) as {
      entries: Array<{ method: string; path: string; status: number; outcome: string; keyId: string | null }>;
    };
    const seen = entries.filter((e) => e.path.includes(marker) || (e.path === '/unmarked' && e.status === 403));
    for (const [method, path, , status] of calls) {
      const match = seen.find((e) => e.method === method && e.path === path && e.status === status);
      expect(match, `${method} ${path} ${status}`).toBeDefined();
    }
    const operatorId = keys.operator.slice(4, 20);
    const filtered = (await (
      await call('GET', `/audit?key_id=${operatorId}&outcome=forbidden`, keys.admin)
    ).json()) as {
      entries: Array<{ keyId: string; outcome: string; reason: string }>;
    };
    expect(filtered.entries.length).toBeGreaterThan(0);
    for (const e of filtered.entries) expect([e.keyId, e.outcome]).toEqual([operatorId, 'forbidden']);
    expect((await call('GET', '/audit?limit=100000', keys.admin)).status).toBe(400);
    // A reading of the audit log is not itself audited; the reads above add nothing.
    const again = (await (await call('GET', '/audit?limit=1', keys.admin)).json()) as { entries: unknown[] };
    expect(again.entries).toHaveLength(1);
  });

  it('leaves out successful calls of a route with audit: false, not its refused ones', async () => {
    const before = await store.queryAudit({ limit: 1 });
    expect((await call('POST', '/ingest', keys.operator, '{}')).status).toBe(200);
    expect(await store.queryAudit({ limit: 1 })).toEqual(before);
    expect((await call('POST', '/ingest', keys.viewer, '{}')).status).toBe(403);
    const [last] = await store.queryAudit({ limit: 1 });
    expect(last).toMatchObject({ path: '/ingest', status: 403, outcome: 'forbidden', keyName: 'viewer' });
  });

  it('refuses to change or remove audit rows, even to the database owner', async () => {
    await call('POST', '/pipelines/append-only', keys.operator, '{}');
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      for (const sql of [
        "UPDATE etl_security.audit SET outcome = 'ok'",
        'DELETE FROM etl_security.audit',
        'TRUNCATE etl_security.audit',
      ]) {
        await expect(client.query(sql), sql).rejects.toThrow(/append-only/);
      }
      const { rows } = await client.query('SELECT count(*)::int AS n FROM etl_security.audit');
      expect(rows[0].n).toBeGreaterThan(0);
    } finally {
      await client.end();
    }
  });
});
