/**
 * Use case 4, compliance, end to end: `etl apply pipelines/compliance.yaml` over a log full of personal data
 * (addresses v4 and v6, user names, e-mail addresses, tokens, passwords, card and phone numbers, in parsed lines
 * and in lines that cannot be parsed), into the PostgreSQL server. Then every place the run could have written to
 * is searched for each original value: every row of every table in the database (the etl checkpoint table too),
 * the dead letters, the audit log, every file under the data directory, and everything the run printed with debug
 * logging on. None may hold one. The audit log has one line per run with what was read, stored, rejected and
 * anonymized, and the retention.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyPipeline, readmeQueries, runUseCase } from './support.ts';

const PIPELINE = resolve(import.meta.dirname, '../../pipelines/compliance.yaml');

/** Every value that must not be stored anywhere, and how it appears in the log. */
const PERSONAL = [
  '203.0.113.77',
  '198.51.100.23',
  '2a01:e0a:1f2:3b40::1',
  '2a01:e0a:1f2:3b40:0:0:0:1',
  'jane.doe',
  'bob_smith',
  'jane@example.com',
  'jane%40example.com',
  's3cr3tT0k3n',
  'hunter2pass',
  '4111-1111-1111-1111',
  '4111111111111111',
  '+33612345678',
  'sess-9f8e7d',
];

const AGENT = 'Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0';
const LINES = [
  `203.0.113.77 - jane.doe [01/Dec/2026:10:00:00 +0000] "GET /reset?email=jane%40example.com&page=2 HTTP/1.1" 200 512 "-" "${AGENT}"`,
  `198.51.100.23 - bob_smith [01/Dec/2026:10:00:01 +0000] "POST /login?password=hunter2pass&next=/ HTTP/1.1" 302 0 "https://example.org/?token=s3cr3tT0k3n" "${AGENT}"`,
  `2a01:e0a:1f2:3b40::1 - - [01/Dec/2026:10:00:02 +0000] "GET /users/jane@example.com HTTP/1.1" 200 100 "-" "${AGENT}"`,
  `203.0.113.77 - - [01/Dec/2026:10:00:03 +0000] "GET /pay?n=4111-1111-1111-1111 HTTP/1.1" 200 100 "-" "${AGENT}"`,
  `198.51.100.23 - - [01/Dec/2026:10:00:04 +0000] "GET /call/+33612345678?session=sess-9f8e7d HTTP/1.1" 404 10 "-" "${AGENT}"`,
  `203.0.113.77 - - [01/Dec/2026:10:00:05 +0000] "GET /cards/4111111111111111 HTTP/1.1" 200 100 "-" "${AGENT}"`,
  // Lines no format parses: dead letters, which keep the line, scrubbed.
  '203.0.113.77 jane.doe said hello from jane@example.com with token=s3cr3tT0k3n',
  'garbage 2a01:e0a:1f2:3b40::1 bob_smith +33612345678',
];

const use = runUseCase('compliance', () => LINES, { ETL_LOG_LEVEL: 'debug' });

function filesUnder(root: string): string[] {
  return readdirSync(root, { recursive: true, encoding: 'utf8' })
    .map((name) => join(root, name))
    .filter((path) => statSync(path).isFile());
}

/** The original values found in `text`. */
const found = (text: string) => PERSONAL.filter((value) => text.includes(value));

describe('pipelines/compliance.yaml', () => {
  it('stores every line, parsed or not, and keeps no personal value in any table', async () => {
    const tables = await use.db.query<{ name: string }>(
      `SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables
        WHERE schemaname NOT IN ('pg_catalog', 'information_schema')`,
    );
    expect(tables.map((t) => t.name)).toContain('public.access_logs_anonymized');
    let rows = 0;
    for (const { name } of tables) {
      const dump = await use.db.query<{ row: string }>(`SELECT t::text AS row FROM ${name} t`);
      rows += name === 'public.access_logs_anonymized' ? dump.length : 0;
      expect({ table: name, found: found(dump.map((r) => r.row).join('\n')) }).toEqual({ table: name, found: [] });
    }
    expect(rows).toBe(6);
    const [first] = await use.db.query<{ ip: string; user: string | null; request: string }>(
      "SELECT host(client_ip) AS ip, \"user\", request FROM access_logs_anonymized WHERE request LIKE '/reset%' OR request LIKE 'GET /reset%'",
    );
    expect(first).toEqual({ ip: '203.0.113.0', user: null, request: 'GET /reset?email=[redacted]&page=2 HTTP/1.1' });
  });

  it('keeps no personal value in the dead letters, the audit log, the state, or what the run printed', () => {
    const files = filesUnder(use.dataDir);
    const rejects = files.find((f) => f.endsWith('compliance.jsonl') && f.includes('rejects')) as string;
    expect(readFileSync(rejects, 'utf8').trim().split('\n')).toHaveLength(2);
    for (const file of files) {
      expect({ file, found: found(readFileSync(file, 'latin1')) }).toEqual({ file, found: [] });
    }
    expect(use.result.stderr).toContain('[compliance/'); // debug logging was on, and said things
    expect(found(use.result.stdout + use.result.stderr)).toEqual([]);
  });

  it('appends one audit line per run: read, stored, rejected, anonymized, retention', async () => {
    const audit = () =>
      readFileSync(join(use.dataDir, 'audit', 'compliance.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line));
    const [line] = audit();
    expect(line).toMatchObject({
      pipeline: 'compliance',
      outcome: 'succeeded',
      records_read: LINES.length,
      written: { store: 6, rejects: 2 },
      rejected: { parsed: 2 },
      stages: {
        anonymized: {
          records: 6,
          addresses_anonymized: 6,
          users_anonymized: 2,
          dead_letters_scrubbed: 2,
        },
      },
      retention: { store: '30d' },
    });
    expect(line.stages.anonymized.texts_scrubbed).toBeGreaterThanOrEqual(6);
    expect(Date.parse(line.ended_at)).toBeGreaterThanOrEqual(Date.parse(line.started_at));
    // A second run finds nothing new, and says so in a line of its own; the first is left as it was.
    const again = await applyPipeline(PIPELINE, { ...use.env, ETL_LOG_LEVEL: 'info' });
    expect(again.code, again.stderr).toBe(0);
    const lines = audit();
    expect(lines).toHaveLength(2);
    expect(lines[0]).toEqual(line);
    expect(lines[1]).toMatchObject({ outcome: 'succeeded', records_read: 0, written: { store: 0, rejects: 0 } });
    expect(lines[1].run_id).not.toBe(line.run_id);
  });

  it("runs every query of the README's section", async () => {
    const queries = readmeQueries('Compliance and audit — `pipelines/compliance.yaml`');
    expect(queries.size).toBe(3);
    for (const [title, sql] of queries) expect((await use.db.query(sql)).length, title).toBeGreaterThan(0);
  });
});
