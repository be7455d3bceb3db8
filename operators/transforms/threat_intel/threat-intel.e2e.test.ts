/**
 * Through YAML and the CLI, as a user runs it: logs → parse → threat_intel → PostgreSQL (typed threat_* columns
 * without configuration) and the threats port → a file for alerting; a misspelt field refused at its line.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etl } from '../../../test/support/cli.ts';
import { REDIS_URL } from '../../../test/support/redis-url.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-threat-e2e-'));
const url = 'postgres://postgres@127.0.0.1:5432/test';
const schema = 'threat_intel_e2e';
const table = 'requests';
async function dropTable(): Promise<void> {
  const client = new pg.Client(url);
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.end();
}
// A run stopped half-way leaves its schema (table and checkpoints); this one starts without it.
beforeAll(dropTable);
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await dropTable();
});

const pipeline = (ipField: string) => `apiVersion: etl/v1
kind: Pipeline
metadata: { name: threat-e2e }
spec:
  sources:
    logs: { type: file, paths: ['logs/*.log'] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
    intel:
      type: threat_intel
      inputs: [parsed]
      ip_field: ${ipField}
      lists:
        - { name: spamhaus_drop, path: lists/drop.txt }
        - { name: firehol_level1, path: lists/level1.netset }
  sinks:
    db: { type: postgres, inputs: [intel], url: '${url}', schema: ${schema}, table: ${table} }
    alerts: { type: file, inputs: [intel.threats], path: out/threats.jsonl, format: jsonl }
`;

describe('threat_intel end to end', () => {
  it('lands typed threat columns in PostgreSQL and the matched requests in the alerts file', async () => {
    mkdirSync(join(dir, 'lists'));
    mkdirSync(join(dir, 'logs'));
    writeFileSync(join(dir, 'lists', 'drop.txt'), '; Spamhaus DROP\n192.0.2.0/24 ; SBL100\n2001:db8::/32 ; SBL200\n');
    writeFileSync(join(dir, 'lists', 'level1.netset'), '# firehol_level1\n198.51.100.0/24\n');
    const line = (ip: string, target: string, agent: string) =>
      `${ip} - - [05/Dec/2026:10:00:00 +0000] "GET ${target} HTTP/1.1" 404 0 "-" "${agent}"`;
    writeFileSync(
      join(dir, 'logs', 'access.log'),
      `${[
        line('192.0.2.7', '/wp-login.php', 'Mozilla/5.0'),
        line('203.0.113.9', '/index.html', 'Mozilla/5.0 (X11; Linux x86_64)'),
        line('203.0.113.10', '/item?id=1%27%20UNION%20SELECT%20NULL--%20-', 'sqlmap/1.7.2#stable'),
        line('2001:db8::1', '/.env', 'curl/8.5.0'),
        line('198.51.100.4', '/', 'Mozilla/5.0'),
      ].join('\n')}\n`,
    );
    writeFileSync(join(dir, 'pipeline.yaml'), pipeline('client_ip'));
    const result = await etl(['apply', '--no-progress', 'pipeline.yaml'], { cwd: dir });
    expect(result.code, result.stderr).toBe(0);

    const client = new pg.Client(url);
    await client.connect();
    try {
      const columns = await client.query(
        `SELECT column_name, data_type FROM information_schema.columns
         WHERE table_schema = $1 AND table_name = $2 AND column_name LIKE 'threat%' ORDER BY ordinal_position`,
        [schema, table],
      );
      expect(columns.rows).toEqual([
        { column_name: 'threat_matched', data_type: 'boolean' },
        { column_name: 'threat_lists', data_type: 'text' },
        { column_name: 'threat_range', data_type: 'text' },
        { column_name: 'threat_range_note', data_type: 'text' },
        { column_name: 'threat_rules', data_type: 'text' },
        { column_name: 'threat_categories', data_type: 'text' },
      ]);
      const rows = await client.query(
        `SELECT host(client_ip) AS ip, threat_matched, threat_lists, threat_range, threat_range_note, threat_rules
         FROM ${schema}.${table} ORDER BY "timestamp", client_ip`,
      );
      expect(rows.rows.map((r) => Object.values(r))).toEqual(
        expect.arrayContaining([
          ['192.0.2.7', true, 'spamhaus_drop', '192.0.2.0/24', 'SBL100', 'probe-wp-login'],
          ['203.0.113.9', false, null, null, null, null],
          ['203.0.113.10', true, null, null, null, 'sqli-union-select,agent-sqlmap'],
          ['2001:db8::1', true, 'spamhaus_drop', '2001:db8::/32', 'SBL200', 'probe-env-file'],
          ['198.51.100.4', true, 'firehol_level1', '198.51.100.0/24', null, null],
        ]),
      );
      expect(rows.rowCount).toBe(5);
    } finally {
      await client.end();
    }
    const alerts = readFileSync(join(dir, 'out', 'threats.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(alerts.map((a) => a.client_ip).sort()).toEqual(['192.0.2.7', '198.51.100.4', '2001:db8::1', '203.0.113.10']);
    expect(alerts.every((a) => a.threat_matched === true)).toBe(true);
  });

  it('refuses a misspelt field at its line and column', async () => {
    writeFileSync(join(dir, 'bad.yaml'), pipeline('clientip'));
    const result = await etl(['validate', 'bad.yaml'], { cwd: dir });
    expect(result.code).toBe(1);
    expect(result.stdout + result.stderr).toMatch(
      /bad\.yaml:12:17: error ETL_GRAPH_UNKNOWN_FIELD: unknown field `clientip` — did you mean `client_ip`\?/,
    );
  });

  it('looks addresses up in AbuseIPDB through a redis resource the pipeline declares', async () => {
    const asked: string[] = [];
    const server = createServer((req, res) => {
      const address = new URL(req.url ?? '/', 'http://localhost').searchParams.get('ipAddress') ?? '';
      asked.push(`${req.headers.key}:${address}`);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          data: { ipAddress: address, abuseConfidenceScore: address === '45.155.205.233' ? 100 : 0, totalReports: 3 },
        }),
      );
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const prefix = `etl-test-threat-e2e-${process.pid}-${Date.now()}:`;
    try {
      mkdirSync(join(dir, 'abuse', 'logs'), { recursive: true });
      const line = (ip: string) => `${ip} - - [05/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "Mozilla/5.0"`;
      writeFileSync(
        join(dir, 'abuse', 'logs', 'access.log'),
        `${['45.155.205.233', '8.8.8.8', '10.1.2.3'].map(line).join('\n')}\n`,
      );
      const port = (server.address() as AddressInfo).port;
      const yaml = (cache: string) => `apiVersion: etl/v1
kind: Pipeline
metadata: { name: threat-abuse-e2e }
spec:
  resources:
    cache: { type: redis, url: '${REDIS_URL}', key_prefix: '${prefix}' }
  sources:
    logs: { type: file, paths: ['logs/*.log'] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
    intel:
      type: threat_intel
      inputs: [parsed]
      abuseipdb: { api_key: '\${secret:ABUSE_KEY}', cache: ${cache}, url: 'http://127.0.0.1:${port}/api/v2/check' }
  sinks:
    out: { type: file, inputs: [intel], path: out/all.jsonl, format: jsonl }
`;
      writeFileSync(join(dir, 'abuse', 'misnamed.yaml'), yaml('cahce'));
      const refused = await etl(['validate', 'misnamed.yaml'], {
        cwd: join(dir, 'abuse'),
        env: { ABUSE_KEY: 'k-123' },
      });
      expect(refused.code).toBe(1);
      expect(refused.stdout + refused.stderr).toMatch(/misnamed\.yaml:14:\d+: error .*cahce/);

      writeFileSync(join(dir, 'abuse', 'pipeline.yaml'), yaml('cache'));
      const result = await etl(['apply', '--no-progress', 'pipeline.yaml'], {
        cwd: join(dir, 'abuse'),
        env: { ABUSE_KEY: 'k-123' },
      });
      expect(result.code, result.stderr).toBe(0);
      const records = readFileSync(join(dir, 'abuse', 'out', 'all.jsonl'), 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(records.map((r) => [r.client_ip, r.threat_score, r.threat_reports, r.threat_matched])).toEqual([
        ['45.155.205.233', 100, 3, true],
        ['8.8.8.8', 0, 3, false],
        ['10.1.2.3', null, null, false],
      ]);
      expect(asked.sort()).toEqual(['k-123:45.155.205.233', 'k-123:8.8.8.8']);
      expect(result.stderr).not.toContain('k-123');
    } finally {
      server.close();
      const redis = new Redis(REDIS_URL);
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    }
  });
});
