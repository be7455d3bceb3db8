/**
 * The enrichment chain as a user declares it, through the CLI into the real PostgreSQL server:
 * file → parse → validate → geoip → user_agent → threat_intel → postgres. Every field the stages add must be
 * a typed column with no configuration but the stages, and hold the known answer: the country of a known
 * address (the bundled database), the browser of a known agent, a crawler flagged, a listed address and a probe
 * named by their rule, a record failing a validation rule dead-lettered with the rule's name.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PG_URL, serverQuery } from '../postgres/helpers.ts';
import { etl } from '../support/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-enrichment-'));
const schema = `enrichment_${process.pid}`;
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await serverQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
});

const CHROME =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
const GOOGLEBOT = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
const line = (ip: string, request: string, status: number, agent: string) =>
  `${ip} - - [05/Dec/2026:10:00:00 +0000] "${request}" ${status} 512 "-" "${agent}"`;

const LINES = [
  line('8.8.8.8', 'GET /index.html HTTP/1.1', 200, CHROME),
  line('2001:4860:4860::8888', 'GET /robots.txt HTTP/1.1', 200, GOOGLEBOT),
  line('81.2.69.160', 'GET /.env HTTP/1.1', 404, 'curl/8.5.0'),
  line('185.220.101.23', 'GET /search?q=shoes HTTP/1.1', 200, CHROME),
  // 10.0.0.8 is private: the `public_client` rule dead-letters it.
  line('10.0.0.8', 'GET /internal HTTP/1.1', 200, CHROME),
];

const log = join(dir, 'access.log');
const blocklist = join(dir, 'blocked.netset');
const rejects = join(dir, 'rejects.jsonl');
const pipeline = join(dir, 'enrich.yaml');
writeFileSync(log, `${LINES.join('\n')}\n`);
writeFileSync(blocklist, '# a FireHOL-style netset\n185.220.101.0/24\n203.0.113.7\n');
writeFileSync(
  pipeline,
  `apiVersion: etl/v1
kind: Pipeline
metadata: { name: enrichment }
spec:
  settings: { data_dir: ${join(dir, '.etl')} }
  sources:
    logs: { type: file, paths: [${log}] }
  operators:
    parsed: { type: parse, inputs: [logs], format: auto }
    checked:
      type: validate
      inputs: [parsed]
      rules:
        - { name: public_client, ip: { field: client_ip, public_only: true } }
        - { name: status, status: { field: status } }
        - name: not_an_error
          action: flag
          condition: 'record.status < 400'
    located: { type: geoip, inputs: [checked] }
    agents: { type: user_agent, inputs: [located] }
    intel:
      type: threat_intel
      inputs: [agents]
      lists:
        - { name: blocked, path: ${blocklist} }
  sinks:
    store: { type: postgres, inputs: [intel], url: "${PG_URL}", schema: ${schema}, table: access, partition: none }
    alerts: { type: file, inputs: [intel.threats], path: ${join(dir, 'threats.jsonl')} }
    rejects: { type: file, inputs: [parsed.dead_letter, checked.dead_letter, store.dead_letter], path: ${rejects} }
`,
);

describe('file → parse → validate → geoip → user_agent → threat_intel → postgres', () => {
  it('validates, then lands every added field as a typed column holding the known answers', async () => {
    const checked = await etl(['validate', pipeline]);
    expect(checked.code, checked.stdout + checked.stderr).toBe(0);

    const run = await etl(['apply', '--no-progress', pipeline]);
    expect(run.code, run.stderr).toBe(0);

    const columns = new Map(
      (
        await serverQuery(
          `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'access'`,
          [schema],
        )
      ).map((c) => [c.column_name as string, c.data_type as string]),
    );
    expect(Object.fromEntries([...columns].filter(([name]) => /^(geo|ua|threat|validation)_/.test(name)))).toEqual({
      validation_failed: 'boolean',
      validation_rules: 'jsonb',
      geo_country_code: 'text',
      geo_country: 'text',
      geo_subdivision_code: 'text',
      geo_subdivision: 'text',
      geo_city: 'text',
      geo_latitude: 'numeric',
      geo_longitude: 'numeric',
      geo_asn: 'bigint',
      geo_as_org: 'text',
      ua_browser: 'text',
      ua_browser_version: 'text',
      ua_engine: 'text',
      ua_os: 'text',
      ua_os_version: 'text',
      ua_device_type: 'text',
      ua_device_vendor: 'text',
      ua_device_model: 'text',
      ua_is_bot: 'boolean',
      ua_bot_name: 'text',
      ua_bot_kind: 'text',
      threat_matched: 'boolean',
      threat_lists: 'text',
      threat_range: 'text',
      threat_range_note: 'text',
      threat_rules: 'text',
      threat_categories: 'text',
    });

    const rows = await serverQuery(
      `SELECT host(client_ip) AS ip, geo_country_code, ua_browser, ua_os, ua_is_bot, ua_bot_name, threat_matched,
              threat_lists, threat_range, threat_rules, validation_failed, validation_rules
         FROM "${schema}".access ORDER BY ip`,
    );
    expect(rows).toEqual([
      {
        ip: '185.220.101.23',
        geo_country_code: 'DE',
        ua_browser: 'Chrome',
        ua_os: 'Windows',
        ua_is_bot: false,
        ua_bot_name: null,
        threat_matched: true,
        threat_lists: 'blocked',
        threat_range: '185.220.101.0/24',
        threat_rules: null,
        validation_failed: false,
        validation_rules: [],
      },
      {
        ip: '2001:4860:4860::8888',
        geo_country_code: 'US',
        ua_browser: 'Googlebot',
        ua_os: null,
        ua_is_bot: true,
        ua_bot_name: 'Googlebot',
        threat_matched: false,
        threat_lists: null,
        threat_range: null,
        threat_rules: null,
        validation_failed: false,
        validation_rules: [],
      },
      {
        ip: '8.8.8.8',
        geo_country_code: 'US',
        ua_browser: 'Chrome',
        ua_os: 'Windows',
        ua_is_bot: false,
        ua_bot_name: null,
        threat_matched: false,
        threat_lists: null,
        threat_range: null,
        threat_rules: null,
        validation_failed: false,
        validation_rules: [],
      },
      {
        ip: '81.2.69.160',
        geo_country_code: 'GB',
        ua_browser: 'curl',
        ua_os: null,
        ua_is_bot: true,
        ua_bot_name: 'curl',
        threat_matched: true,
        threat_lists: null,
        threat_range: null,
        threat_rules: 'probe-env-file',
        validation_failed: true,
        validation_rules: ['not_an_error'],
      },
    ]);

    // The private address: dead-lettered by its rule, with its line and origin.
    const letters = readFileSync(rejects, 'utf8')
      .trim()
      .split('\n')
      .map((text) => JSON.parse(text) as Record<string, unknown>);
    expect(letters).toHaveLength(1);
    expect(JSON.stringify(letters[0])).toContain('public_client');
    expect(JSON.stringify(letters[0])).toContain('10.0.0.8');
    // The two threats, on the alerting path too.
    expect(readFileSync(join(dir, 'threats.jsonl'), 'utf8').trim().split('\n')).toHaveLength(2);
  });

  it('refuses a misspelt field in any stage at its line and column, before anything runs', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, readFileSync(pipeline, 'utf8').replace('ip: { field: client_ip', 'ip: { field: clientip'));
    const result = await etl(['validate', bad]);
    expect(result.code).not.toBe(0);
    expect(result.stdout + result.stderr).toMatch(/bad\.yaml:14:\d+.*clientip[\s\S]*client_ip/);
  });
});
