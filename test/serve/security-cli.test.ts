/** `etl serve --api-keys` as a user runs it, with a key made by `etl keys create` on the same data directory. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { etl, startEtl } from '../support/cli.ts';
import { until } from './helpers.ts';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'etl-serve-keys-'));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('requires a key on every route but the probes, and refuses plain HTTP beyond loopback', async () => {
  const dataDir = join(dir, 'data');
  const created = await etl(['keys', 'create', '--data-dir', dataDir, '--name', 'cli', '--role', 'viewer']);
  expect(created.code, created.stderr).toBe(0);
  const key = created.stdout.trim();

  const run = startEtl([
    'serve',
    '--api-keys',
    '--data-dir',
    dataDir,
    '--listen',
    '127.0.0.1:0',
    '--log-level',
    'info',
  ]);
  let stderr = '';
  run.child.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
  });
  try {
    const url = await until(() => /API on (http:\/\/\S+)/.exec(stderr)?.[1] ?? '', 'the daemon to listen');
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/pipelines`)).status).toBe(401);
    expect((await fetch(`${url}/pipelines`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    expect(stderr).not.toContain(key);
  } finally {
    run.child.kill('SIGTERM');
    await run.done;
  }

  const refused = await etl(['serve', '--api-keys', '--data-dir', dataDir, '--listen', '0.0.0.0:0']);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toContain('refusing plain HTTP on 0.0.0.0');
  const orphan = await etl(['serve', '--tls-cert', 'c.pem', '--tls-key', 'k.pem']);
  expect([orphan.code, orphan.stderr]).toEqual([1, expect.stringContaining('add --api-keys')]);
});
