/**
 * Through YAML and the CLI, as a user runs it: parse → normalize → the PostgreSQL server, where computed fields
 * land in typed columns (from the types the CEL checker gave them), the query map in jsonb (null without a query), and the endpoint
 * template next to the path it was made from.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { etl } from '../../../test/support/cli.ts';
import { PG_URL } from '../../../test/postgres/helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-normalize-e2e-'));
const table = `normalize_e2e_${randomBytes(4).toString('hex')}`;
const client = new pg.Client({ connectionString: PG_URL });

afterAll(async () => {
  await client.query(`DROP TABLE IF EXISTS public.${table} CASCADE`);
  // The sink keeps its checkpoint with the data, by pipeline (named after the table).
  await client.query('DELETE FROM public.etl_checkpoints WHERE pipeline = $1', [table]);
  await client.end();
  rmSync(dir, { recursive: true, force: true });
});

const LINES = [
  '8.8.8.8 - - [10/Oct/2026:13:55:36 +0000] "GET /users/123/orders/9?q=a+b&x=%zz HTTP/1.1" 200 2326 "-" "curl/8"',
  '8.8.4.4 - - [10/Oct/2026:13:55:37 +0000] "GET /files/d41d8cd98f00b204e9800998ecf8427e/caf%C3%A9 HTTP/1.1" 503 12 "-" "curl/8"',
  '1.1.1.1 - - [10/Oct/2026:13:55:38 +0000] "GET /users/7/orders/12 HTTP/1.1" 200 5000 "-" "curl/8"',
];

const PIPELINE = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: ${table} }
spec:
  sources:
    logs: { type: file, paths: ['access.log'] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
    norm:
      type: normalize
      inputs: [parsed]
      steps:
        - rename: { from: client_ip, to: ip }
        - url: { field: path }
        - query: { field: query, to: params }
        - endpoint: { field: path, to: endpoint }
        - compute: { field: kilobytes, expression: 'record.bytes / 1024' }
        - compute: { field: server_error, expression: 'record.status >= 500' }
        - compute: { field: share, expression: 'double(record.bytes) / 10000.0' }
        - drop: { fields: [user_agent, ident] }
  sinks:
    db:
      type: postgres
      inputs: [norm]
      url: ${PG_URL}
      table: ${table}
      partition: none
`;

describe('normalize end to end', () => {
  writeFileSync(join(dir, 'access.log'), `${LINES.join('\n')}\n`);
  writeFileSync(join(dir, 'p.yaml'), PIPELINE);

  it('validates, then loads typed computed columns into PostgreSQL', async () => {
    const validated = await etl(['validate', 'p.yaml'], { cwd: dir });
    expect(validated.code, validated.stderr + validated.stdout).toBe(0);

    const result = await etl(['apply', '--no-progress', 'p.yaml'], { cwd: dir });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/outcome +succeeded/);

    await client.connect();
    const columns = await client.query<{ column_name: string; data_type: string }>(
      `SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1`,
      [table],
    );
    const types = Object.fromEntries(columns.rows.map((c) => [c.column_name, c.data_type]));
    expect(types).toMatchObject({
      ip: 'text',
      kilobytes: 'bigint',
      server_error: 'boolean',
      share: 'double precision',
      endpoint: 'text',
      params: 'jsonb',
    });
    expect(types).not.toHaveProperty('client_ip');
    expect(types).not.toHaveProperty('user_agent');

    const rows = await client.query(
      `SELECT ip, path, endpoint, params, kilobytes, server_error, share FROM public.${table} ORDER BY timestamp`,
    );
    expect(rows.rows).toEqual([
      {
        ip: '8.8.8.8',
        path: '/users/123/orders/9',
        endpoint: '/users/:id/orders/:id',
        params: { q: 'a b', x: '%zz' },
        kilobytes: '2',
        server_error: false,
        share: 0.2326,
      },
      {
        ip: '8.8.4.4',
        path: '/files/d41d8cd98f00b204e9800998ecf8427e/café',
        endpoint: '/files/:id/café',
        params: null,
        kilobytes: '0',
        server_error: true,
        share: 0.0012,
      },
      {
        ip: '1.1.1.1',
        path: '/users/7/orders/12',
        endpoint: '/users/:id/orders/:id',
        params: null,
        kilobytes: '4',
        server_error: false,
        share: 0.5,
      },
    ]);
    const byEndpoint = await client.query(
      `SELECT endpoint, count(*)::int AS n FROM public.${table} GROUP BY endpoint ORDER BY n DESC, endpoint`,
    );
    expect(byEndpoint.rows).toEqual([
      { endpoint: '/users/:id/orders/:id', n: 2 },
      { endpoint: '/files/:id/café', n: 1 },
    ]);
  });
});
