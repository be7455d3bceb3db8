/**
 * What the use-case suites share: a PostgreSQL database of their own on the test server (the pipelines in
 * pipelines/ write to `public`, as a user's would), and `etl apply` of a pipeline file through the CLI.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect } from 'vitest';
import { PG_URL } from '../postgres/helpers.ts';
import { type CliResult, etl } from '../support/cli.ts';

export interface TestDatabase {
  readonly url: string;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

/** A new, empty database on the test server; `drop` removes it. */
export async function freshDatabase(prefix: string): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 2 });
  // An idle connection the server ends (another suite's cleanup, a restart) must not be an unhandled error.
  pool.on('error', () => {});
  return {
    url: url.toString(),
    async query<T>(sql: string, params: unknown[] = []) {
      return (await pool.query(sql, params)).rows as T[];
    },
    async drop() {
      await pool.end();
      const client = new pg.Client({ connectionString: PG_URL });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** `etl apply` of `pipeline` with `env` added, as a user runs it; `etl validate` first. */
export async function applyPipeline(pipeline: string, env: NodeJS.ProcessEnv): Promise<CliResult> {
  const checked = await etl(['validate', pipeline], { env });
  if (checked.code !== 0) return checked;
  return etl(['apply', '--no-progress', pipeline], { env });
}

/** The SQL blocks of the README's section `### <heading>` (each starts with a `-- title` comment line). */
export function readmeQueries(heading: string): Map<string, string> {
  const readme = readFileSync(resolve(import.meta.dirname, '../../README.md'), 'utf8');
  const start = readme.indexOf(`### ${heading}`);
  if (start < 0) throw new Error(`README has no section "### ${heading}"`);
  const end = readme.slice(start + 4).search(/\n##/);
  const section = end < 0 ? readme.slice(start) : readme.slice(start, start + 4 + end);
  const queries = new Map<string, string>();
  for (const [, sql] of section.matchAll(/```sql\n([\s\S]*?)```/g)) {
    const title = /^-- (.*)$/m.exec(sql as string)?.[1];
    if (title === undefined) throw new Error(`a query of "${heading}" has no "-- title" line`);
    queries.set(title, sql as string);
  }
  return queries;
}

/** `time` (epoch ms) as Common Log Format writes it: `01/Dec/2026:10:00:00 +0000`. */
export function clfTime(time: number): string {
  const d = new Date(time);
  const month = d.toLocaleString('en', { month: 'short', timeZone: 'UTC' });
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(d.getUTCDate())}/${month}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}

/** What a use-case suite runs against: the log it wrote, the database and data directory the pipeline used. */
export interface PipelineRun {
  readonly dir: string;
  readonly dataDir: string;
  /** The environment the pipeline ran with: apply it again with this to rerun it. */
  readonly env: NodeJS.ProcessEnv;
  readonly db: TestDatabase;
  /** What the first `etl apply` printed. */
  readonly result: CliResult;
}

/**
 * Before the suite: writes `lines()` to `access.log` in a directory of its own, makes a fresh database, and runs
 * `etl apply` of `pipelines/<name>.yaml` on them (it must succeed); after it, drops both.
 */
export function runUseCase(name: string, lines: () => readonly string[], env: NodeJS.ProcessEnv = {}): PipelineRun {
  const dir = mkdtempSync(join(tmpdir(), `etl-${name}-`));
  const dataDir = join(dir, '.etl');
  const state: { db?: TestDatabase; result?: CliResult; env?: NodeJS.ProcessEnv } = {};
  beforeAll(async () => {
    writeFileSync(join(dir, 'access.log'), `${lines().join('\n')}\n`);
    state.db = await freshDatabase(name);
    state.env = { ACCESS_LOG_GLOB: join(dir, 'access.log'), DATABASE_URL: state.db.url, ETL_DATA_DIR: dataDir, ...env };
    state.result = await applyPipeline(resolve(import.meta.dirname, `../../pipelines/${name}.yaml`), state.env);
    expect(state.result.code, state.result.stdout + state.result.stderr).toBe(0);
  });
  afterAll(async () => {
    await state.db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });
  const ready = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error(`the ${name} pipeline has not run yet`);
    return value;
  };
  return {
    dir,
    dataDir,
    get env() {
      return ready(state.env);
    },
    get db() {
      return ready(state.db);
    },
    get result() {
      return ready(state.result);
    },
  };
}
