/**
 * `etl serve` with PostgreSQL sinks (a real server, and the embedded default): SIGTERM drains every pipeline and
 * writes its checkpoint, a rerun resumes from it and writes nothing twice; a storm of alternating applies
 * leaves exactly one running version, and every line arrives once.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../operators/sinks/postgres/driver.ts';
import { PG_URL, serverQuery } from '../postgres/helpers.ts';
import { startEtl } from '../support/cli.ts';
import { appendLines, daemon, pipeline, until } from './helpers.ts';

const COUNT = "SELECT count(*)::int AS n, count(DISTINCT substring(query from 'seq=(\\d+)'))::int AS d FROM ";

let dir: string;
const schemas: string[] = [];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'etl-serve-pg-'));
});
/** Daemons started by a test: one still running when it ends (it failed) is killed, not left behind. */
const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0))
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});
afterAll(async () => {
  for (const schema of schemas) await serverQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await rm(dir, { recursive: true, force: true });
});

function newSchema(): string {
  const schema = `etl_serve_${randomBytes(4).toString('hex')}`;
  schemas.push(schema);
  return schema;
}

/** `etl serve` as a user starts it; resolves with its URL once it listens. */
async function serve(conf: string) {
  const run = startEtl(['serve', '--config-dir', conf, '--listen', '127.0.0.1:0', '--log-level', 'info'], {
    env: { DATABASE_URL: '' },
  });
  children.push(run.child);
  let stderr = '';
  run.child.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const url = await until(() => /API on (http:\/\/\S+)/.exec(stderr)?.[1] ?? '', 'the daemon to listen');
  return { ...run, url, stderr: () => stderr };
}

async function pipelines(url: string) {
  return (await fetch(`${url}/pipelines`)).json() as Promise<Array<Record<string, unknown>>>;
}

async function serverCount(table: string): Promise<{ n: number; d: number }> {
  const [row] = await serverQuery(COUNT + table);
  return row as { n: number; d: number };
}

async function embeddedCount(dataDir: string): Promise<{ n: number; d: number }> {
  const db = await openDatabase(
    { kind: 'embedded', dir: join(dataDir, 'pgdata') },
    { poolMaxConnections: 1, connectTimeoutMs: 5000, applicationName: 'etl tests' },
  );
  try {
    const session = await db.session();
    try {
      return (await session.query(`${COUNT}access_logs`)).rows[0] as { n: number; d: number };
    } finally {
      session.release();
    }
  } finally {
    await db.close();
  }
}

describe('etl serve with PostgreSQL', () => {
  it.each(['server', 'embedded'] as const)(
    'SIGTERM drains and checkpoints every pipeline; a rerun resumes and writes nothing twice (%s)',
    async (mode) => {
      const base = join(dir, mode);
      const conf = join(base, 'conf');
      await mkdir(conf, { recursive: true });
      const schema = newSchema();
      const names = ['alpha', 'beta'];
      for (const name of names) {
        await writeFile(join(base, `${name}.log`), '');
        await appendLines(join(base, `${name}.log`), 0, 1500);
        const sink =
          mode === 'server' ? `type: postgres, url: "${PG_URL}", schema: ${schema}, table: ${name}` : 'type: postgres';
        const dataDir = join(base, '.etl', name);
        await writeFile(join(conf, `${name}.yaml`), pipeline({ name, dataDir, log: join(base, `${name}.log`), sink }));
      }
      const count = (name: string) =>
        mode === 'server' ? serverCount(`"${schema}"."${name}"`) : embeddedCount(join(base, '.etl', name));

      const first = await serve(conf);
      await until(async () => (await fetch(`${first.url}/readyz`)).status === 200, 'the daemon to be ready');
      expect((await pipelines(first.url)).map((p) => p.status)).toEqual(['running', 'running']);
      if (mode === 'server') {
        for (const name of names) await until(async () => (await count(name)).n === 1500, `${name}: 1500 rows`);
      } else {
        await until(
          async () =>
            (await pipelines(first.url)).every((p) => (p.stats as { recordsOut: number }).recordsOut === 1500),
          'every line written',
        );
      }
      // SIGHUP rescans the directory; the daemon lives on.
      first.child.kill('SIGHUP');
      expect((await fetch(`${first.url}/healthz`)).status).toBe(200);
      expect(first.child.exitCode).toBeNull();
      first.child.kill('SIGTERM');
      const ended = await first.done;
      expect(ended.code, first.stderr()).toBe(0);
      expect(first.stderr()).toContain('every pipeline stopped; checkpoints written');
      for (const name of names) {
        const state = JSON.parse(await readFile(join(base, '.etl', name, 'state', `${name}.json`), 'utf8'));
        expect(state.committed.positions.logs).toBeDefined();
        expect(state.pending).toBeUndefined();
        expect(await count(name)).toEqual({ n: 1500, d: 1500 });
        await appendLines(join(base, `${name}.log`), 1500, 500);
      }

      const second = await serve(conf);
      await until(async () => (await fetch(`${second.url}/readyz`)).status === 200, 'the daemon to be ready');
      expect((await pipelines(second.url)).length).toBe(2);
      await until(
        async () => (await pipelines(second.url)).every((p) => (p.stats as { recordsOut: number }).recordsOut === 500),
        'the new lines, and only those',
      );
      expect(second.stderr()).toContain('resuming from checkpoint');
      second.child.kill('SIGINT');
      expect((await second.done).code).toBe(0);
      for (const name of names) expect(await count(name)).toEqual({ n: 2000, d: 2000 });
    },
  );

  it('a storm of 100 alternating applies leaves exactly one running version, and every line arrives once', async () => {
    const base = join(dir, 'storm');
    await mkdir(base, { recursive: true });
    const log = join(base, 'access.log');
    await writeFile(log, '');
    await appendLines(log, 0, 2000);
    const schema = newSchema();
    const version = (i: number) =>
      pipeline({
        name: 'storm',
        dataDir: join(base, '.etl'),
        log,
        sink: `type: postgres, url: "${PG_URL}", schema: ${schema}`,
        checkpointSeconds: i % 2 === 0 ? 0.2 : 0.3,
      });
    const d = await daemon();
    try {
      expect((await d.call('POST', '/pipelines', version(1))).status).toBe(200);
      // Twenty waves of five concurrent applies: each wave a reload at least, requests racing within it.
      const storm = (async () => {
        const answers: Array<{ status: number }> = [];
        for (let wave = 0; wave < 20; wave++) {
          const calls = Array.from({ length: 5 }, (_, i) => d.call('POST', '/pipelines', version(wave * 5 + i)));
          answers.push(...(await Promise.all(calls)));
        }
        return answers;
      })();
      // Lines keep arriving while versions come and go.
      const appended = (async () => {
        for (let i = 0; i < 5; i++) await appendLines(log, 2000 + i * 200, 200);
      })();
      const answers = await storm;
      await appended;
      expect(answers).toHaveLength(100);
      expect(answers.every((a) => a.status === 200)).toBe(true);
      const [only, ...others] = (await d.call('GET', '/pipelines')).body;
      expect(others).toEqual([]);
      expect(only).toMatchObject({ name: 'storm', status: 'running' });
      expect(only.runningVersion).toBe(only.version);
      expect(only.runs).toBeGreaterThanOrEqual(20);
      const lock = JSON.parse(await readFile(join(base, '.etl', 'state', 'storm.lock'), 'utf8'));
      expect(lock.pid).toBe(process.pid);
      await until(async () => (await serverCount(`"${schema}".access_logs`)).n >= 3000, '3000 rows');
      await d.call('POST', '/pipelines/storm/stop');
      expect(await serverCount(`"${schema}".access_logs`)).toEqual({ n: 3000, d: 3000 });
      expect(d.log()).not.toMatch(/ERROR/);
    } finally {
      await d.shutdown();
    }
  });
});
