/** Through YAML and the CLI, as a user runs it: a directory of mixed logs → parse (auto) → files. */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { etl } from '../../../test/support/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-parse-e2e-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const readJsonl = (path: string) =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('parse end to end', () => {
  it('parses a mixed directory with format auto and dead-letters the rest with file and line', async () => {
    cpSync(fileURLToPath(new URL('./testdata/mixed/', import.meta.url)), join(dir, 'logs'), { recursive: true });
    const good = '127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1';
    writeFileSync(join(dir, 'logs', 'broken.log'), `${good}\nnot a log line\n`);
    writeFileSync(
      join(dir, 'pipeline.yaml'),
      `apiVersion: etl/v1
kind: Pipeline
metadata: { name: parse-e2e }
spec:
  sources:
    logs: { type: file, paths: ['logs/*.log'] }
  operators:
    parsed: { type: parse, inputs: [logs], format: auto }
  sinks:
    out: { type: file, inputs: [parsed], path: out/parsed.jsonl, format: jsonl }
    rejects: { type: file, inputs: [parsed.dead_letter], path: out/rejects.jsonl, format: jsonl }
`,
    );
    const result = await etl(['apply', '--no-progress', 'pipeline.yaml'], { cwd: dir, env: { ETL_LOG_LEVEL: 'info' } });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/parse: detected format .*nginx-json\.log.*"format":"json"/);
    expect(result.stderr).toMatch(
      /parse: detected format .*nginx-request-time\.log.*"format":"nginx_combined_request_time"/,
    );

    const parsed = readJsonl(join(dir, 'out', 'parsed.jsonl'));
    expect(parsed).toHaveLength(11);
    expect(parsed.filter((r) => r.request_time_ms !== null).map((r) => r.request_time_ms)).toEqual(
      expect.arrayContaining([2, 215, 1, 4, 120, 0]),
    );
    const rejects = readJsonl(join(dir, 'out', 'rejects.jsonl'));
    expect(rejects).toHaveLength(1);
    expect(rejects[0]).toMatchObject({
      stage: 'parsed',
      raw: 'not a log line',
      origin: { file: expect.stringMatching(/broken\.log$/), line: 2, offset: good.length + 1 },
    });
    expect(rejects[0]?.reason).toMatch(/^no candidate format fits; common: /);

    const invalid = join(dir, 'invalid.yaml');
    writeFileSync(
      invalid,
      readFileSync(join(dir, 'pipeline.yaml'), 'utf8').replace(
        'format: auto',
        "format: { nginx: '$remote_addr $stauts' }",
      ),
    );
    const validation = await etl(['validate', 'invalid.yaml'], { cwd: dir });
    expect(validation.code).not.toBe(0);
    expect(validation.stdout + validation.stderr).toMatch(
      /invalid\.yaml:8:\d+: error ETL_CFG_INVALID: unknown variable \$stauts at column 14/,
    );
  });

  it('detects vhost_combined, forwarding lists, appended fields and error logs, and routes error logs to their own sink', async () => {
    const logs = join(dir, 'issue7');
    mkdirSync(logs, { recursive: true });
    const ua = 'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0';
    const time = '[10/Oct/2023:13:55:36 +0200]';
    writeFileSync(
      join(logs, 'other_vhosts_access.log'),
      `www.example.com:443 203.0.113.7 - - ${time} "GET / HTTP/1.1" 200 3477 "-" "${ua}"\n` +
        `blog.example.com:80 198.51.100.4 - - ${time} "GET /feed HTTP/1.1" 304 180 "-" "${ua}"\n`,
    );
    writeFileSync(
      join(logs, 'proxied.log'),
      `203.0.113.9, 10.0.0.2 - - ${time} "GET /a HTTP/1.1" 200 5 "-" "${ua}" "-" 0.012 0.010\n` +
        `"198.51.100.23, 10.0.0.3" 10.0.0.4 - - ${time} "GET /b HTTP/1.1" 200 6 - - "-" 0.020 -\n`,
    );
    writeFileSync(
      join(logs, 'error.log'),
      '[Mon Dec 26 16:22:08 2016] [error] [client 192.168.33.1] File does not exist: /var/www/favicon.ico\n' +
        '2016/10/25 14:49:34 [error] 54053#0: *1 open() "/srv/favicon.ico" failed (2: No such file or directory), client: 127.0.0.1, server: localhost\n',
    );
    writeFileSync(
      join(dir, 'issue7.yaml'),
      `apiVersion: etl/v1
kind: Pipeline
metadata: { name: parse-issue7 }
spec:
  sources:
    logs: { type: file, paths: ['issue7/*.log'] }
  operators:
    parsed: { type: parse, inputs: [logs], format: auto, trusted_proxies: ['10.0.0.0/8'] }
  sinks:
    out: { type: file, inputs: [parsed], path: out7/access.jsonl, format: jsonl }
    errors: { type: file, inputs: [parsed.error_log], path: out7/errors.jsonl, format: jsonl }
    rejects: { type: file, inputs: [parsed.dead_letter], path: out7/rejects.jsonl, format: jsonl }
`,
    );
    const result = await etl(['apply', '--no-progress', 'issue7.yaml'], { cwd: dir, env: { ETL_LOG_LEVEL: 'info' } });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/parse: detected format .*other_vhosts_access\.log.*"format":"vhost_combined"/);
    expect(result.stderr).toMatch(/parse: detected format .*error\.log.*"output":"parsed\.error_log"/);

    const access = readJsonl(join(dir, 'out7', 'access.jsonl'));
    const byPath = new Map(access.map((r) => [r.path, r]));
    expect(byPath.get('/')).toMatchObject({ vhost: 'www.example.com', port: 443, client_ip: '203.0.113.7' });
    expect(byPath.get('/a')).toMatchObject({
      client_ip: '203.0.113.9',
      forwarded_for: ['203.0.113.9', '10.0.0.2'],
      user_agent: ua,
      request_time_ms: 12,
      upstream_response_time_ms: 10,
    });
    expect(byPath.get('/b')).toMatchObject({
      client_ip: '198.51.100.23',
      referrer: null,
      user_agent: null,
      request_time_ms: 20,
    });
    const errors = readJsonl(join(dir, 'out7', 'errors.jsonl'));
    expect(errors.map((r) => r.server).sort()).toEqual(['apache', 'nginx']);
    expect(existsSync(join(dir, 'out7', 'rejects.jsonl')) ? readJsonl(join(dir, 'out7', 'rejects.jsonl')) : []).toEqual(
      [],
    );
  });
});
