/**
 * The Docker image's final stage, laid out without Docker (no daemon here): the files the Dockerfile COPYs,
 * filtered by .dockerignore, plus `npm ci --omit=dev` as its deps stage runs it. etl must then start from that
 * layout through the entrypoint's symlink, validate the pipelines the image carries, and run a pipeline through
 * the operators the stack uses into PostgreSQL: proof that no runtime import reaches a file the image leaves out
 * or a devDependency.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import picomatch from 'picomatch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './files.ts';

const run = promisify(execFile);
const PG_URL = process.env.ETL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const ignored = picomatch(
  readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#')),
  { dot: true },
);

/** Whether the build context leaves `path` out: it, or a folder it is in, matches .dockerignore. */
function excluded(path: string): boolean {
  const parts = path.split('/');
  return parts.some((_, i) => ignored(parts.slice(0, i + 1).join('/')));
}

/** Copies `source` (relative to the repository) to `target` as `COPY` of the build context would. */
function copyFromContext(source: string, target: string): number {
  let files = 0;
  const walk = (path: string, to: string) => {
    if (excluded(path)) return;
    if (statSync(join(ROOT, path)).isDirectory()) {
      for (const entry of readdirSync(join(ROOT, path))) walk(`${path}/${entry}`, join(to, entry));
    } else {
      cpSync(join(ROOT, path), to);
      files++;
    }
  };
  walk(source, target);
  return files;
}

/** The final stage's `COPY` instructions (not `--from`), as [sources, destination]. */
function copies(): Array<[string[], string]> {
  return readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('COPY ') && !line.includes('--from='))
    .map((line) => {
      const words = line.trim().split(/\s+/).slice(1);
      return [words.slice(0, -1), words.at(-1) as string];
    });
}

let dir: string;
let app: string;
const schema = `etl_image_${randomBytes(4).toString('hex')}`;

async function etl(args: string[], env: NodeJS.ProcessEnv = {}) {
  // The entrypoint: /usr/local/bin/etl, a symlink to /app/bin/etl.js, run by the node on PATH.
  const path = `${join(dir, 'usr-local-bin')}:${dirname(process.execPath)}:${process.env.PATH ?? ''}`;
  return run(join(dir, 'usr-local-bin', 'etl'), args, {
    cwd: app,
    env: { ...process.env, PATH: path, NODE_ENV: 'production', ETL_DATA_DIR: join(dir, 'state'), ...env },
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'etl-image-'));
  app = join(dir, 'app');
  for (const [sources, destination] of copies()) {
    for (const source of sources) {
      const into = destination.endsWith('/')
        ? join(app, destination, source.split('/').at(-1) as string)
        : join(app, destination);
      expect(copyFromContext(source, into), source).toBeGreaterThan(0);
    }
  }
  // The deps stage.
  const deps = join(dir, 'deps');
  await mkdir(deps);
  cpSync(join(ROOT, 'package.json'), join(deps, 'package.json'));
  cpSync(join(ROOT, 'package-lock.json'), join(deps, 'package-lock.json'));
  await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], {
    cwd: deps,
    env: { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` },
  });
  await rename(join(deps, 'node_modules'), join(app, 'node_modules'));
  await mkdir(join(dir, 'usr-local-bin'));
  await symlink(join(app, 'bin', 'etl.js'), join(dir, 'usr-local-bin', 'etl'));
});

afterAll(async () => {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).finally(() => client.end());
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('the image layout', () => {
  it('holds no tests, test data or devDependencies', () => {
    const files = (root: string): string[] =>
      readdirSync(root, { recursive: true, encoding: 'utf8' }).map((path) => relative(app, join(root, path)));
    expect(files(join(app, 'operators')).filter((path) => path.endsWith('.test.ts'))).toEqual([]);
    expect(files(join(app, 'operators')).filter((path) => path.includes('testdata'))).toEqual([]);
    expect(readdirSync(join(app, 'node_modules'))).not.toContain('vitest');
    expect(readdirSync(join(app, 'node_modules'))).not.toContain('typescript');
  });

  it('starts etl through the entrypoint', async () => {
    const { stdout } = await etl(['--version']);
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(stdout).toContain(version);
  });

  it('validates the pipelines it carries', async () => {
    const { stdout } = await etl(['validate', 'pipelines/', 'deploy/etl/', 'deploy/loggen/'], {
      DATABASE_URL: PG_URL,
    });
    const carried = ['pipelines', 'deploy/etl', 'deploy/loggen'].flatMap((d) =>
      readdirSync(join(ROOT, d)).filter((f) => f.endsWith('.yaml')),
    ).length;
    expect(stdout).toContain(`${carried} pipelines in ${carried} files: valid`);
  });

  it('runs a pipeline through the stack operators into PostgreSQL', async () => {
    const pipeline = join(dir, 'image-check.yaml');
    await writeFile(
      pipeline,
      `apiVersion: etl/v1
kind: Pipeline
metadata: { name: image-check }
spec:
  sources:
    gen: { type: generator, format: nginx_combined_request_time, count: 3000, malformed_ratio: 0 }
  operators:
    parsed: { type: parse, inputs: [gen], format: auto }
    checked:
      type: validate
      inputs: [parsed]
      rules:
        - { name: status, status: { field: status } }
        - { name: fast, action: flag, condition: 'record.request_time_ms < 5000.0' }
    endpoints: { type: normalize, inputs: [checked], steps: [{ endpoint: { field: path, to: endpoint } }] }
    located: { type: geoip, inputs: [endpoints] }
    agents: { type: user_agent, inputs: [located] }
  sinks:
    warehouse: { type: postgres, inputs: [agents], url: "${PG_URL}", schema: ${schema}, table: image_check }
`,
    );
    await etl(['apply', '--no-progress', pipeline]);
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    try {
      const { rows } = await client.query(
        `SELECT count(*)::int AS n, count(geo_country)::int AS located, count(ua_browser)::int AS agents FROM ${schema}.image_check`,
      );
      expect(rows[0]).toMatchObject({ n: 3000 });
      expect(rows[0].located).toBeGreaterThan(0);
      expect(rows[0].agents).toBeGreaterThan(0);
    } finally {
      await client.end();
    }
  });
});
