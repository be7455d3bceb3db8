/** `etl query` against the server and the embedded database, and its error paths. */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runQuery } from '../../engine/cli/commands/query.ts';
import { accessRecord, DeadLetters, PG_URL, Target, testContext } from './helpers.ts';

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

const SQL = 'SELECT status, count(*) AS requests FROM access_logs GROUP BY status ORDER BY status';

/** Loads ten rows; embedded, into `<dataDir>/.etl/pgdata`, where `etl query` looks from `<dataDir>`. */
async function load(target: Target): Promise<void> {
  const ctx = testContext(join(target.dataDir, '.etl'));
  const sink = target.sink(target.options(), ctx, () => Date.parse('2024-05-01T12:00:00Z'));
  await sink.open?.();
  await sink.write(
    Array.from({ length: 10 }, (_, i) => accessRecord(i, '2024-05-01T10:00:00Z')),
    new DeadLetters(),
  );
  await sink.commit?.({ id: 1, positions: {} });
  await sink.close?.();
}

describe('etl query', () => {
  let target: Target;
  let cwd: string;
  let sleeper: ChildProcess | undefined;
  beforeEach(() => {
    cwd = process.cwd();
  });
  afterEach(async () => {
    process.chdir(cwd);
    sleeper?.kill('SIGKILL');
    await target.dispose();
  });

  it('prints a table, CSV or JSON from a server', async () => {
    target = await Target.create('server');
    await load(target);
    const url = PG_URL;
    const sql = `SET search_path TO "${target.schema}"; ${SQL}`;
    const table = capture();
    expect(await runQuery(sql, { url, format: 'table', out: table.stream })).toBe(0);
    expect(table.text()).toBe(
      [
        ' status | requests',
        '--------+----------',
        '    200 |        2',
        '    201 |        2',
        '    202 |        2',
        '    203 |        2',
        '    204 |        2',
        '(5 rows)',
        '',
      ].join('\n'),
    );
    const csv = capture();
    expect(await runQuery(sql, { url, format: 'csv', out: csv.stream })).toBe(0);
    expect(csv.text().split('\n').slice(0, 3)).toEqual(['status,requests', '200,2', '201,2']);
    const json = capture();
    expect(await runQuery(sql, { url, format: 'json', out: json.stream })).toBe(0);
    expect(JSON.parse(json.text())[0]).toEqual({ status: 200, requests: 2 });
    // Several statements with rows: a table each, in order; CSV and JSON show the last and say so.
    const both = capture();
    expect(await runQuery('SELECT 1 AS a; SELECT 2 AS b', { url, format: 'table', out: both.stream })).toBe(0);
    expect(both.text()).toBe([' a', '---', ' 1', '(1 row)', '', ' b', '---', ' 2', '(1 row)', ''].join('\n'));
    const last = capture();
    const said = capture();
    expect(
      await runQuery('SELECT 1 AS a; SELECT 2 AS b', { url, format: 'json', out: last.stream, err: said.stream }),
    ).toBe(0);
    expect(JSON.parse(last.text())).toEqual([{ b: 2 }]);
    expect(said.text()).toBe("etl query: 2 statements returned rows; --format json shows the last one's\n");
  });

  it.each(['server', 'embedded'] as const)(
    'shows every column of a result whose names repeat, each with its own value (%s)',
    async (kind) => {
      target = await Target.create(kind);
      await load(target);
      process.chdir(target.dataDir);
      const options = kind === 'server' ? { url: PG_URL } : { env: {} };
      // count(*) and count(user) are both named `count`; rows keyed by name showed the last one twice.
      const sql = `SELECT count(*), count(NULLIF(status, 200)), 1, 2 FROM "${target.schema}".access_logs`;
      const table = capture();
      expect(await runQuery(sql, { ...options, format: 'table', out: table.stream })).toBe(0);
      expect(table.text().split('\n').slice(0, 3)).toEqual([
        ' count | count | ?column? | ?column?',
        '-------+-------+----------+----------',
        '    10 |     8 |        1 |        2',
      ]);
      const csv = capture();
      expect(await runQuery(sql, { ...options, format: 'csv', out: csv.stream })).toBe(0);
      expect(csv.text().split('\n').slice(0, 2)).toEqual(['count,count,?column?,?column?', '10,8,1,2']);
      const json = capture();
      expect(await runQuery(sql, { ...options, format: 'json', out: json.stream })).toBe(0);
      expect(JSON.parse(json.text())).toEqual([{ count: 10, count_2: 8, '?column?': 1, '?column?_2': 2 }]);
    },
  );

  it("finds the database and schema from the pipeline's postgres sink", async () => {
    target = await Target.create('server');
    await load(target);
    const file = join(target.dataDir, 'pipeline.yaml');
    await writeFile(
      file,
      `apiVersion: etl/v1
kind: Pipeline
metadata: { name: q }
spec:
  sources:
    gen: { type: generator, count: 1 }
  operators:
    parsed: { type: parse, inputs: [gen] }
  sinks:
    store: { type: postgres, inputs: [parsed], url: "${PG_URL}", schema: ${target.schema} }
`,
    );
    const out = capture();
    const err = capture();
    const code = await runQuery('SELECT count(*) AS n FROM access_logs', {
      pipeline: file,
      format: 'csv',
      out: out.stream,
      err: err.stream,
    });
    expect(code, err.text()).toBe(0);
    expect(out.text()).toBe('n\n10\n');
  });

  it('reports SQL errors and unreachable servers with exit code 1, never a password', async () => {
    target = await Target.create('server');
    const err = capture();
    const out = capture();
    expect(
      await runQuery('SELECT * FROM no_such_table', { url: PG_URL, format: 'table', out: out.stream, err: err.stream }),
    ).toBe(1);
    expect(err.text()).toMatch(/relation "no_such_table" does not exist/);
    const err2 = capture();
    const url = 'postgres://etl:hunter2@127.0.0.1:1/x';
    expect(await runQuery('SELECT 1', { url, format: 'table', out: out.stream, err: err2.stream })).toBe(1);
    expect(err2.text()).toContain('postgres://etl:***@127.0.0.1:1/x');
    expect(err2.text()).not.toContain('hunter2');
    expect(out.text()).toBe('');
  });

  it("masks the values of the pipeline's secrets in its messages, not only the password", async () => {
    target = await Target.create('server');
    const file = join(target.dataDir, 'secret.yaml');
    await writeFile(
      file,
      `apiVersion: etl/v1
kind: Pipeline
metadata: { name: q }
spec:
  sources:
    gen: { type: generator, count: 1 }
  operators:
    parsed: { type: parse, inputs: [gen] }
  sinks:
    store:
      type: postgres
      inputs: [parsed]
      url: "postgres://etl:\${secret:ETL_TEST_PW}@127.0.0.1:1/x?application_name=\${secret:ETL_TEST_APP}"
`,
    );
    process.env.ETL_TEST_PW = 'hunter2';
    process.env.ETL_TEST_APP = 'sesame-open';
    try {
      const out = capture();
      const err = capture();
      expect(await runQuery('SELECT 1', { pipeline: file, format: 'table', out: out.stream, err: err.stream })).toBe(1);
      expect(err.text()).toContain('127.0.0.1:1');
      expect(err.text()).not.toContain('hunter2');
      expect(err.text()).not.toContain('sesame-open');
    } finally {
      delete process.env.ETL_TEST_PW;
      delete process.env.ETL_TEST_APP;
    }
  });

  it('reads the embedded database under .etl/pgdata by default, and says when another process holds it', async () => {
    target = await Target.create('embedded');
    await load(target);
    process.chdir(target.dataDir);
    const out = capture();
    const env = {};
    expect(
      await runQuery(`SELECT count(*)::int AS n FROM "${target.schema}".access_logs`, {
        format: 'json',
        out: out.stream,
        env,
      }),
    ).toBe(0);
    expect(JSON.parse(out.text())).toEqual([{ n: 10 }]);

    sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    await mkdir(join(target.dataDir, '.etl'), { recursive: true });
    await writeFile(join(target.dataDir, '.etl', 'pgdata.lock'), String(sleeper.pid));
    const err = capture();
    expect(await runQuery('SELECT 1', { format: 'table', out: out.stream, err: err.stream, env })).toBe(1);
    expect(err.text()).toContain(`in use by another etl process (pid ${sleeper.pid}`);
  });

  it('says there is no embedded database yet, and creates none', async () => {
    target = await Target.create('embedded');
    process.chdir(target.dataDir);
    const out = capture();
    const err = capture();
    expect(await runQuery('SELECT 1', { format: 'table', out: out.stream, err: err.stream, env: {} })).toBe(1);
    expect(err.text()).toContain(`no embedded database in ${join(target.dataDir, '.etl', 'pgdata')}`);
    expect(err.text()).toContain('`etl apply`');
    expect(existsSync(join(target.dataDir, '.etl'))).toBe(false);
    expect(out.text()).toBe('');
  });
});
