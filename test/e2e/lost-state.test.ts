/**
 * A state directory lost with its container: the rerun used to read every line again into PostgreSQL,
 * although `etl_checkpoints` held the positions committed with the rows. Now it resumes from there, and
 * refuses when another stage's state was kept only in the lost directory.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeLogFile } from '../../operators/sources/generator/write-file.ts';
import { PG_URL, serverQuery } from '../postgres/helpers.ts';
import { etl } from '../support/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-lost-state-'));
const schema = `lost_state_${process.pid}`;
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await serverQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
});

const LINES = 5_000;
const log = join(dir, 'access.log');
const file = join(dir, 'p.yaml');
const stateDir = join(dir, '.etl', 'state');

function write(withRejects: boolean): void {
  writeFileSync(
    file,
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: lost }
spec:
  settings: { data_dir: ${join(dir, '.etl')} }
  sources:
    logs: { type: file, paths: [${log}] }
  operators:
    parsed: { type: parse, inputs: [logs], format: auto }
  sinks:
    store: { type: postgres, inputs: [parsed], url: "${PG_URL}", schema: ${schema}, partition: none }
${withRejects ? `    rejects: { type: file, inputs: [parsed.dead_letter], path: ${join(dir, 'rejects.jsonl')} }\n` : ''}`,
  );
}

const rows = async () =>
  (
    await serverQuery(
      `SELECT count(*)::int AS n, count(DISTINCT (path, timestamp))::int AS d FROM "${schema}".access_logs`,
    )
  )[0];

describe('a rerun without its state directory', () => {
  it('resumes from the positions PostgreSQL committed with the rows', async () => {
    await writeLogFile(log, LINES, { seed: 11, format: 'nginx_combined', malformed_ratio: 0 });
    write(false);
    const first = await etl(['apply', '--no-progress', file]);
    expect(first.code, first.stderr).toBe(0);
    const loaded = await rows();
    expect(loaded?.n).toBe(LINES);

    rmSync(stateDir, { recursive: true, force: true });
    const again = await etl(['apply', '--no-progress', file]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('the state directory holds no checkpoint of this pipeline');
    expect(again.stderr).toMatch(
      /resuming from checkpoint \d+, the positions sink store \(checkpoint \d+\) committed with the data/,
    );
    expect(again.stderr).toMatch(/records read\s+0\n/);
    expect(await rows()).toEqual(loaded);

    // Lines appended since are read, once, after losing the state again.
    const more = join(dir, 'more.log');
    await writeLogFile(more, 1_000, { seed: 12, format: 'nginx_combined', malformed_ratio: 0 });
    appendFileSync(log, readFileSync(more));
    rmSync(stateDir, { recursive: true, force: true });
    const appended = await etl(['apply', '--no-progress', file]);
    expect(appended.code, appended.stderr).toBe(0);
    expect(appended.stderr).toMatch(/records read\s+1,000 /);
    expect((await rows())?.n).toBe(LINES + 1_000);
  });

  it('refuses when a file sink kept its state only in the lost directory, and goes on with --forget', async () => {
    write(true);
    const first = await etl(['apply', '--no-progress', file]);
    expect(first.code, first.stderr).toBe(0);
    const before = await rows();

    rmSync(stateDir, { recursive: true, force: true });
    const refused = await etl(['apply', '--no-progress', file]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('the state of rejects was kept only there');
    expect(refused.stderr).toContain('--forget rejects');
    expect(refused.stderr).toContain('--reset');
    expect(await rows()).toEqual(before);

    const forgot = await etl(['apply', '--no-progress', '--forget', 'rejects', file]);
    expect(forgot.code, forgot.stderr).toBe(0);
    expect(forgot.stderr).toMatch(/records read\s+0\n/);
    expect(await rows()).toEqual(before);
  });
});
