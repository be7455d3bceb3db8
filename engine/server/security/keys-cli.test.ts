/** `etl keys` as a user runs it: a separate process, the daemon's store, keys that then open (or not) the API. */
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { etl } from '../../../test/support/cli.ts';
import { randomNamespace, REDIS_URL, scratchDatabase, testApi } from '../../../test/support/security-api.ts';
import type { StoreLocation } from './store.ts';

let dir: string;
let db: { url: string; drop(): Promise<void> };

beforeAll(async () => {
  [dir, db] = await Promise.all([mkdtemp(join(tmpdir(), 'etl-keys-')), scratchDatabase()]);
});

afterAll(async () => {
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function keysCli(args: string[], location: string[]) {
  const result = await etl(['keys', ...location, ...args], { cwd: dir });
  return result;
}

/** Serves the test API on `location` while `work` runs; the status of GET /pipelines with `key`. */
async function withServer<T>(location: StoreLocation, work: (status: (key: string) => Promise<number>) => Promise<T>) {
  const app = await testApi({
    store: location,
    rateLimit: { max: 1000, timeWindowMs: 60_000, redis: REDIS_URL, namespace: randomNamespace() },
  });
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    return await work(
      async (key) => (await fetch(`${base}/pipelines`, { headers: { authorization: `Bearer ${key}` } })).status,
    );
  } finally {
    await app.close();
  }
}

it('creates, lists and revokes keys in the embedded store of a data directory', async () => {
  const location = ['--data-dir', join(dir, 'data')];
  const created = await keysCli(['create', '--name', 'ci bot', '--role', 'operator'], location);
  expect(created.code, created.stderr).toBe(0);
  const key = created.stdout.trim();
  expect(key).toMatch(/^etl_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
  const id = key.slice(4, 20);
  expect(created.stderr).toContain(`key ${id} (ci bot, operator) created`);

  const listed = await keysCli(['list', '--format', 'json'], location);
  expect(listed.code, listed.stderr).toBe(0);
  expect(JSON.parse(listed.stdout)).toEqual([
    expect.objectContaining({ id, name: 'ci bot', role: 'operator', revokedAt: null }),
  ]);
  expect(listed.stdout).not.toContain(key.slice(21));

  // The daemon reads the same store (and holds it: the CLI runs while it does not).
  await withServer({ dataDir: join(dir, 'data') }, async (status) => {
    expect(await status(key)).toBe(200);
    const locked = await keysCli(['list'], location);
    expect(locked.code).toBe(1);
    expect(locked.stderr).toContain('manage keys through its API');
  });

  const revoked = await keysCli(['revoke', id], location);
  expect(revoked.code, revoked.stderr).toBe(0);
  expect(revoked.stdout).toMatch(new RegExp(`^revoked ${id} \\(ci bot, operator\\) at \\d{4}-`));
  expect((await keysCli(['list'], location)).stdout).not.toContain(id);
  expect((await keysCli(['list', '--all'], location)).stdout).toContain(id);
  expect(await withServer({ dataDir: join(dir, 'data') }, (status) => status(key))).toBe(401);
});

it('works on a shared PostgreSQL server while daemons run, and refuses bad input', async () => {
  const location = ['--postgres-url', db.url];
  await withServer({ postgresUrl: db.url, dataDir: dir }, async (status) => {
    const created = await keysCli(['create', '--name', 'dash', '--role', 'viewer'], location);
    expect(created.code, created.stderr).toBe(0);
    const key = created.stdout.trim();
    expect(await status(key)).toBe(200);
    expect((await keysCli(['revoke', key.slice(4, 20)], location)).code).toBe(0);
    expect(await status(key)).toBe(401);
  });
  const badRole = await keysCli(['create', '--name', 'x', '--role', 'root'], location);
  expect([badRole.code, badRole.stderr]).toEqual([2, expect.stringContaining('unknown role "root"')]);
  const noKey = await keysCli(['revoke', 'ffffffffffffffff'], location);
  expect([noKey.code, noKey.stderr]).toEqual([1, expect.stringContaining('no key "ffffffffffffffff"')]);
  // A password in the URL never reaches the terminal.
  const wrong = await keysCli(['list'], ['--postgres-url', 'postgres://etl:hunter2@127.0.0.1:1/none']);
  expect(wrong.code).toBe(1);
  expect(wrong.stderr).not.toContain('hunter2');
});
