/**
 * The README's main command, as a newcomer runs it: the quickstart loads the sample logs into the
 * embedded PostgreSQL, every line is either a row or a dead letter, `etl query` reads the result, and a
 * rerun adds nothing.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { etl } from '../support/cli.ts';

const examples = fileURLToPath(new URL('../../examples/', import.meta.url));
const cwd = mkdtempSync(join(tmpdir(), 'etl-quickstart-'));
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

const countLines = (text: string) => text.split('\n').length - (text.endsWith('\n') ? 1 : 0);

describe('quickstart', () => {
  it('prints the DDL it would run on --dry-run, and creates nothing', async () => {
    cpSync(examples, join(cwd, 'examples'), { recursive: true });
    const result = await etl(['apply', '--dry-run', 'examples/quickstart.yaml'], { cwd, env: { DATABASE_URL: '' } });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^-- pipeline quickstart/);
    expect(result.stdout).toContain('CREATE TABLE "public"."access_logs" (');
    expect(result.stdout).toContain(') PARTITION BY RANGE ("timestamp");');
    expect(result.stdout).toContain('PARTITION OF "public"."access_logs" DEFAULT;');
    expect(existsSync(join(cwd, '.etl'))).toBe(false);
  });

  it('loads every sample line into the embedded database or the rejects, once', async () => {
    const logs = join(cwd, 'examples', 'logs');
    const inputLines =
      countLines(readFileSync(join(logs, 'apache-access.log'), 'utf8')) +
      countLines(readFileSync(join(logs, 'nginx-access.log'), 'utf8')) +
      countLines(readFileSync(join(logs, 'api-access.json.log'), 'utf8')) +
      countLines(gunzipSync(readFileSync(join(logs, 'nginx-access.log.1.gz'))).toString());
    const env = { DATABASE_URL: '' };

    const first = await etl(['apply', '--no-progress', 'examples/quickstart.yaml'], { cwd, env });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/outcome\s+succeeded/);

    // One query per load (each `etl query` opens the embedded database anew): requests by status.
    const byStatus = async () => {
      const result = await etl(
        [
          'query',
          '--pipeline',
          'examples/quickstart.yaml',
          '--format',
          'json',
          'SELECT status, count(*)::int AS n FROM access_logs GROUP BY status ORDER BY n DESC',
        ],
        { cwd, env },
      );
      expect(result.code, result.stderr).toBe(0);
      return JSON.parse(result.stdout) as Array<{ status: number; n: number }>;
    };
    const total = (counts: Array<{ n: number }>) => counts.reduce((sum, c) => sum + c.n, 0);
    const counts = await byStatus();
    const stored = total(counts);
    const rejected = countLines(readFileSync(join(cwd, '.etl', 'quickstart', 'rejects.jsonl'), 'utf8'));
    expect(stored + rejected).toBe(inputLines);
    // The samples carry about 1% broken lines (a TLS handshake's NUL bytes are stored, as `\x00`).
    expect(rejected / inputLines).toBeLessThan(0.03);
    expect(stored).toBeGreaterThan(0.97 * inputLines);
    expect(counts[0]?.status).toBe(200);

    // The geoip and user_agent stages: countries and browsers as columns (the sample addresses are public).
    const enriched = await etl(
      [
        'query',
        '--pipeline',
        'examples/quickstart.yaml',
        '--format',
        'json',
        `SELECT count(geo_country_code)::int AS located, count(DISTINCT geo_country)::int AS countries,
                count(*) FILTER (WHERE ua_browser = 'Chrome' AND NOT ua_is_bot)::int AS chrome,
                count(*) FILTER (WHERE ua_bot_name = 'Googlebot')::int AS googlebot FROM access_logs`,
      ],
      { cwd, env },
    );
    expect(enriched.code, enriched.stderr).toBe(0);
    const [geo] = JSON.parse(enriched.stdout) as Array<Record<string, number>>;
    expect(geo?.located).toBeGreaterThan(0.9 * stored);
    expect(geo?.countries).toBeGreaterThan(20);
    expect(geo?.chrome).toBeGreaterThan(0.1 * stored);
    expect(geo?.googlebot).toBeGreaterThan(0);

    const again = await etl(['apply', '--no-progress', 'examples/quickstart.yaml'], { cwd, env });
    expect(again.code, again.stderr).toBe(0);
    expect(total(await byStatus())).toBe(stored);
  });

  it('validates the shipped pipelines and examples', async () => {
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const result = await etl(['validate', 'pipelines', 'examples'], {
      cwd: root,
      env: { DATABASE_URL: 'postgres://etl@127.0.0.1:5432/logs' },
    });
    expect(result.code, result.stdout + result.stderr).toBe(0);
  });
});
