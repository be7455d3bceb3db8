/**
 * The compose stack's data path, run here without Docker: the database made by deploy/postgres/initdb, the
 * `loggen` pipeline appending a live access log, `etl apply deploy/etl/` following it into PostgreSQL, and a
 * real Prometheus (Debian package `prometheus`) scraping that run. Then every SQL query of the dashboards runs
 * on the loaded table as Grafana's read-only role (macros expanded as Grafana does), and every PromQL query of
 * the dashboards and alerts is evaluated by that Prometheus.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ETL_BIN } from '../support/cli.ts';
import { dashboards, PROMETHEUS_DIR, queryPanels, ROOT, readYaml } from './files.ts';
import { expandGrafanaSql } from './grafana-macros.ts';

const PG_URL = process.env.ETL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ROWS = 2000;
const run = promisify(execFile);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function urlFor(database: string, user?: string): string {
  const url = new URL(PG_URL);
  url.pathname = `/${database}`;
  if (user !== undefined) {
    url.username = user;
    url.password = '';
  }
  return url.toString();
}

async function query(url: string, sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

/** Resolves once `check` returns something other than undefined; rejects when `failed()` says a process died. */
async function until<T>(check: () => Promise<T | undefined>, failed: () => string | undefined): Promise<T> {
  for (;;) {
    const problem = failed();
    if (problem !== undefined) throw new Error(problem);
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

interface Proc {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  code: number | null | undefined;
  stderr: string;
}

function track(child: ChildProcess): Proc {
  const proc: Proc = { child, exited: Promise.resolve(null), code: undefined, stderr: '' };
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    proc.stderr += chunk;
  });
  (proc as { exited: Promise<number | null> }).exited = new Promise((resolve) => {
    child.once('exit', (code) => {
      proc.code = code;
      resolve(code);
    });
    // A program that could not be started (not installed) emits no 'exit': without this, the wait for it never ends.
    child.once('error', (error) => {
      proc.stderr += `could not start: ${error.message}`;
      proc.code = null;
      resolve(null);
    });
  });
  return proc;
}

const database = `etl_deploy_${randomBytes(4).toString('hex')}`;
let dir: string;
let metricsPort: number;
let prometheusUrl: string;
let loggen: Proc;
let etl: Proc;
let prometheus: Proc;

/** Why the wait is over: a process of the stack exited early, with the end of what it said. */
function died(): string | undefined {
  const procs: Array<[string, Proc | undefined]> = [
    ['loggen', loggen],
    ['etl', etl],
    ['prometheus', prometheus],
  ];
  const gone = procs.find(([, proc]) => proc !== undefined && proc.code !== undefined);
  return gone && `${gone[0]} exited (${gone[1]?.code}): ${gone[1]?.stderr.slice(-2000)}`;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'etl-stack-'));
  const logs = join(dir, 'logs');
  await mkdir(logs);
  // The init script as the postgres image runs it, into a database of this test's own.
  await run('psql', [
    '-v',
    'ON_ERROR_STOP=1',
    '-v',
    `etl_database=${database}`,
    '-d',
    urlFor('postgres'),
    '-f',
    join(ROOT, 'deploy/postgres/initdb/01-etl.sql'),
  ]);

  // loggen >> access.log, as the compose service runs it (faster, so the test does not wait long).
  const log = createWriteStream(join(logs, 'access.log'), { flags: 'a' });
  const loggenChild = spawn(process.execPath, [ETL_BIN, 'apply', '--no-progress', 'deploy/loggen/loggen.yaml'], {
    cwd: ROOT,
    env: { ...process.env, ETL_LOG_LEVEL: 'warn', ETL_DATA_DIR: join(dir, 'loggen'), LOGGEN_RATE_PER_SECOND: '2000' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  loggenChild.stdout?.pipe(log);
  loggen = track(loggenChild);

  metricsPort = await freePort();
  etl = track(
    spawn(process.execPath, [ETL_BIN, 'apply', '--no-progress', 'deploy/etl/'], {
      cwd: ROOT,
      env: {
        ...process.env,
        ETL_LOG_LEVEL: 'warn',
        ETL_DATA_DIR: join(dir, 'etl'),
        ETL_METRICS_PORT: String(metricsPort),
        ACCESS_LOG_GLOB: `${logs}/access.log*`,
        DATABASE_URL: urlFor(database),
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    }),
  );

  // The stack's Prometheus configuration with the rules, its target moved to this run.
  const prometheusPort = await freePort();
  prometheusUrl = `http://127.0.0.1:${prometheusPort}`;
  await writeFile(
    join(dir, 'prometheus.yml'),
    [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      `rule_files: ["${join(PROMETHEUS_DIR, 'alerts.yml')}"]`,
      'scrape_configs:',
      `  - { job_name: etl, static_configs: [{ targets: ["127.0.0.1:${metricsPort}"] }] }`,
    ].join('\n'),
  );
  prometheus = track(
    spawn(
      '/usr/bin/prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'tsdb')}`,
        `--web.listen-address=127.0.0.1:${prometheusPort}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    ),
  );

  await until(async () => {
    const { rows } = await query(urlFor(database), 'SELECT count(*)::int AS n FROM web_traffic');
    return (rows[0] as { n: number }).n >= ROWS ? true : undefined;
  }, died);
  // Prometheus has scraped the run (its stage counters are there).
  await until(async () => {
    const series = await promql('etl_component_received_records_total{pipeline="web-traffic"}');
    return series.length > 0 ? true : undefined;
  }, died);
});

afterAll(async () => {
  for (const proc of [loggen, etl, prometheus]) if (proc?.code === undefined) proc.child.kill('SIGINT');
  await Promise.all([loggen?.exited, etl?.exited, prometheus?.exited]);
  await query(urlFor('postgres'), `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => undefined);
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function promql(expr: string): Promise<unknown[]> {
  const response = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await response.json()) as { status: string; error?: string; data?: { result: unknown[] } };
  if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
  return body.data?.result ?? [];
}

describe('the compose data path', () => {
  it('loads the enriched table the web traffic dashboard reads', async () => {
    const { rows } = await query(
      urlFor(database),
      `SELECT count(*) FILTER (WHERE geo_country IS NOT NULL)::int AS located,
              count(*) FILTER (WHERE ua_browser IS NOT NULL)::int AS agents,
              count(*) FILTER (WHERE ua_is_bot)::int AS bots,
              count(*) FILTER (WHERE endpoint IS NOT NULL)::int AS endpoints,
              max("timestamp") > now() - interval '10 minutes' AS live
         FROM web_traffic`,
    );
    expect(rows[0]).toMatchObject({ live: true });
    for (const column of ['located', 'agents', 'bots', 'endpoints']) expect(rows[0][column], column).toBeGreaterThan(0);
  });

  it('gives Grafana read access only', async () => {
    await query(urlFor(database, 'grafana'), 'SELECT 1 FROM web_traffic LIMIT 1');
    await expect(query(urlFor(database, 'grafana'), 'DELETE FROM web_traffic')).rejects.toThrow(/permission denied/);
  });
});

const sqlPanels = dashboards().flatMap(({ file, dashboard }) =>
  queryPanels(dashboard)
    .filter((panel) => panel.targets?.some((target) => target.rawSql !== undefined))
    .map((panel) => ({ name: `${file}: ${panel.title}`, panel })),
);

describe('every SQL query of the dashboards, as Grafana runs it', () => {
  it('covers the web traffic dashboard', () => {
    expect(sqlPanels.length).toBeGreaterThanOrEqual(10);
  });

  it.each(sqlPanels)('$name returns rows', async ({ panel }) => {
    const now = Date.now();
    const range = { from: new Date(now - 3_600_000), to: new Date(now + 600_000) };
    for (const target of panel.targets ?? []) {
      const sql = expandGrafanaSql(target.rawSql ?? '', range, { __interval: '1m' });
      const result = await query(urlFor(database, 'grafana'), sql);
      expect(result.rows.length, sql).toBeGreaterThan(0);
      if (target.format === 'time_series') expect(result.fields[0]?.name).toBe('time');
      for (const row of result.rows) expect(Object.values(row as object), sql).not.toContain(undefined);
    }
  });
});

const promQueries = [
  ...dashboards().flatMap(({ file, dashboard }) =>
    queryPanels(dashboard).flatMap((panel) =>
      (panel.targets ?? [])
        .filter((target) => target.expr !== undefined)
        .map((target) => ({ name: `${file}: ${panel.title} ${target.refId}`, expr: target.expr as string })),
    ),
  ),
  ...(
    readYaml(join(PROMETHEUS_DIR, 'alerts.yml')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> }
  ).groups
    .flatMap((group) => group.rules)
    .map((rule) => ({ name: `alert ${rule.alert}`, expr: rule.expr })),
];

describe('every PromQL query of the dashboards and alerts, on a Prometheus scraping the run', () => {
  it.each(promQueries)('$name is accepted', async ({ expr }) => {
    const grafanaVariables = expr.replaceAll('$pipeline', '.*').replaceAll('$__rate_interval', '1m');
    await expect(promql(grafanaVariables)).resolves.toBeInstanceOf(Array);
  });

  it('shows the run on the throughput panel', async () => {
    const throughput = promQueries.find((q) => q.name.includes('Records in per stage A'));
    expect(throughput).toBeDefined();
    const expr = (throughput?.expr ?? '').replaceAll('$pipeline', 'web-traffic').replaceAll('$__rate_interval', '1m');
    await until(async () => ((await promql(expr)).length > 0 ? true : undefined), died);
  });

  it('loaded the alert rules', async () => {
    const response = await fetch(`${prometheusUrl}/api/v1/rules`);
    const body = (await response.json()) as { data: { groups: Array<{ rules: Array<{ name: string }> }> } };
    const names = body.data.groups.flatMap((group) => group.rules.map((rule) => rule.name));
    expect(names).toContain('EtlFreshnessOver5s');
    expect(existsSync('/usr/bin/prometheus')).toBe(true);
  });
});
