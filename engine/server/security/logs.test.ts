/** What the server logs carries no key, no configured secret and no URL password. */
import { Writable } from 'node:stream';
import Fastify from 'fastify';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { scratchDatabase } from '../../../test/support/security-api.ts';
import { registerSecurity } from './plugin.ts';
import { SecurityStore } from './store.ts';
import { REDACTED_LOG_PATHS, serverOptions } from './transport.ts';

const SECRET = 'hunter2-but-longer';
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

it('logs requests and failures without keys or secrets', async () => {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const app = Fastify({
    ...serverOptions({}),
    logger: {
      level: 'debug',
      stream,
      redact: [...REDACTED_LOG_PATHS],
      // Headers are not logged by default; a daemon that logs them must still not leak the key.
      serializers: { req: (req) => ({ method: req.method, url: req.url, headers: req.headers }) },
    },
  });
  await registerSecurity(app, { store, rateLimit: { max: 100, timeWindowMs: 60_000 }, secrets: () => [SECRET] });
  app.get('/boom', async () => {
    throw new Error(`cannot reach postgres://etl:${SECRET}@db/logs`);
  });
  app.get('/ok', async () => ({ ok: true }));
  try {
    const key = (await store.createKey('logged', 'viewer')).key;
    const wrong = `${key.slice(0, -1)}${key.endsWith('A') ? 'B' : 'A'}`;
    expect((await app.inject({ url: '/boom', headers: { authorization: `Bearer ${key}` } })).statusCode).toBe(500);
    expect((await app.inject({ url: '/ok', headers: { 'x-api-key': key } })).statusCode).toBe(200);
    expect((await app.inject({ url: '/ok', headers: { authorization: `Bearer ${wrong}` } })).statusCode).toBe(401);
    const log = lines.join('');
    expect(log).toContain('request failed');
    expect(log).toContain('[Redacted]');
    for (const leak of [key, wrong, key.slice(21), SECRET]) expect(log).not.toContain(leak);
  } finally {
    await app.close();
  }
});
