import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { EMPTY_STATE, indexName, planTable } from './ddl.ts';
import { maskUrl, resolveTarget } from './driver.ts';
import definition from './index.ts';
import { buildLayout, layoutProblems, stagingOf } from './layout.ts';
import type { PostgresSinkOptions } from './schema.ts';
import { DEAD_LETTER_SCHEMA, withFields } from '../../../engine/record-schema.ts';
import { accessRecordSchema } from '../../shared/log-records.ts';

const ajv = new Ajv({ useDefaults: true, strict: true, allErrors: true });
const validate = ajv.compile(definition.schema);

function options(patch: Record<string, unknown> = {}): PostgresSinkOptions {
  const value = structuredClone(patch);
  if (!validate(value)) throw new Error(ajv.errorsText(validate.errors));
  return value as unknown as PostgresSinkOptions;
}

describe('postgres sink definition', () => {
  it('has examples that validate and pass the cross-field checks', () => {
    expect(definition.examples.length).toBeGreaterThan(0);
    for (const example of definition.examples) {
      expect(validate(structuredClone(example)), ajv.errorsText(validate.errors)).toBe(true);
      expect(layoutProblems(example, accessRecordSchema)).toEqual([]);
    }
  });

  it('refuses what JSON Schema cannot see', () => {
    const messages = (patch: Record<string, unknown>) =>
      layoutProblems(options(patch), accessRecordSchema).map((p) => p.message);
    expect(messages({ record_schema: 'none' })).toEqual(['time_column `timestamp` is no column of the table']);
    expect(messages({ time_column: 'timestmp' })).toEqual([
      'time_column `timestmp` is no column of the table — did you mean `timestamp`?',
    ]);
    expect(messages({ time_column: 'path' })).toEqual([expect.stringContaining('is text; partitioning needs')]);
    expect(messages({ partition: 'none', retention: '30d' })).toEqual([expect.stringContaining('retention drops')]);
    expect(messages({ unique_key: ['path'] })).toEqual([expect.stringContaining('must include the partition key')]);
    expect(messages({ indexes: [{ columns: ['stauts'] }] })).toEqual([
      'unknown column `stauts` — did you mean `status`?',
    ]);
    expect(messages({ unique_key: ['timestamp', 'pth'] })).toEqual(['unknown column `pth` — did you mean `path`?']);
    expect(messages({ reconnect_initial_backoff_ms: 9000 })).toHaveLength(1);
    expect(layoutProblems(options({ on_conflict: 'update' }), accessRecordSchema)[0]?.severity).toBe('warning');
    expect(messages({ record_schema: 'dead_letter', time_column: 'time' })).toEqual([]);
  });

  it('derives the columns from the records reaching it, `record_schema` instead when set', () => {
    const enriched = withFields(accessRecordSchema, {
      geo_country: { type: ['string', 'null'] },
      geo_latitude: { type: ['number', 'null'], minimum: -90, maximum: 90 },
    });
    const columns = (patch: Record<string, unknown>, input = enriched) =>
      Object.fromEntries(buildLayout(options(patch), input).columns.map((c) => [c.name, c.type]));
    expect(columns({})).toMatchObject({
      client_ip: 'inet',
      status: 'smallint',
      timestamp: 'timestamptz',
      geo_country: 'text',
      geo_latitude: 'numeric',
      extra: 'jsonb',
    });
    expect(columns({ record_schema: 'access' })).not.toHaveProperty('geo_country');
    expect(columns({ columns: { geo_country: 'inet' } })).toMatchObject({ geo_country: 'inet' });
    expect(Object.keys(columns({}, DEAD_LETTER_SCHEMA))).toEqual([
      'stage',
      'reason',
      'time',
      'origin',
      'raw',
      'raw_base64',
      'extra',
    ]);
    // Unknown input (problems reported elsewhere) and no record_schema: the columns are not judged.
    expect(layoutProblems(options({ time_column: 'nowhere' }), undefined)).toEqual([]);
  });

  it('refines the access record fields, and no other field of the same name', () => {
    const type = (name: string, input: Parameters<typeof buildLayout>[1]) =>
      buildLayout(options({ partition: 'none' }), input).columns.find((c) => c.name === name);
    expect(type('status', accessRecordSchema)).toMatchObject({ type: 'smallint', min: 100, max: 999 });
    expect(type('client_ip', withFields(accessRecordSchema, { geo_city: { type: 'string' } }))?.type).toBe('inet');
    const other = { type: 'object', properties: { status: { type: 'integer', minimum: 0 } } } as const;
    expect(type('status', other)).toMatchObject({ type: 'bigint', min: 0 });
  });

  it("adds origin_columns of the origin property's type, and refuses one named like a field", () => {
    const layout = buildLayout(
      options({ origin_columns: { nats_sequence: 'sequence', src: 'file', n: 'deliveries' } }),
      accessRecordSchema,
    );
    const typeOf = (name: string) => layout.columns.find((c) => c.name === name)?.type;
    expect([typeOf('nats_sequence'), typeOf('src'), typeOf('n')]).toEqual(['bigint', 'text', 'integer']);
    const problems = layoutProblems(
      options({ partition: 'none', origin_columns: { path: 'line', seq: 'sequence' }, unique_key: ['seq'] }),
      accessRecordSchema,
    );
    expect(problems.map((p) => [p.path, p.message])).toEqual([
      [['origin_columns', 'path'], 'origin column `path` is also a field of the records or a column of `columns`'],
    ]);
  });

  it('warns of a column no record can fill, with the field meant', () => {
    const [warning] = layoutProblems(options({ columns: { user_agnt: 'text' } }), accessRecordSchema);
    expect(warning).toMatchObject({
      path: ['columns', 'user_agnt'],
      severity: 'warning',
      message:
        'column `user_agnt` will stay empty: the records reaching the sink have no such field — did you mean `user_agent`?',
    });
  });

  it('rejects unknown keys and bad names before anything runs', () => {
    expect(validate({ tabel: 'x' })).toBe(false);
    expect(validate({ table: 'Access-Logs' })).toBe(false);
    expect(validate({ retention: '90 days' })).toBe(false);
    expect(validate({ columns: { geo: 'geometry' } })).toBe(false);
  });
});

describe('table plan', () => {
  it('creates schema, partitioned table, default partition, indexes and checkpoint table', () => {
    const layout = buildLayout(
      options({ schema: 'web', indexes: [{ columns: ['status'] }], unique_key: ['timestamp', 'path'] }),
      accessRecordSchema,
    );
    const { statements, warnings } = planTable(layout, EMPTY_STATE);
    expect(warnings).toEqual([]);
    expect(statements[0]).toBe('CREATE SCHEMA IF NOT EXISTS "web"');
    expect(statements[1]).toMatch(/^CREATE TABLE "web"\."access_logs" \(\n {2}"client_ip" inet,/);
    expect(statements[1]).toMatch(/\) PARTITION BY RANGE \("timestamp"\)$/);
    expect(statements).toContain(`COMMENT ON TABLE "web"."access_logs" IS 'etl: partition=day'`);
    expect(statements).toContain('CREATE TABLE "web"."access_logs_default" PARTITION OF "web"."access_logs" DEFAULT');
    expect(statements).toContain(
      'CREATE INDEX IF NOT EXISTS "access_logs_timestamp_brin" ON "web"."access_logs" USING brin ("timestamp")',
    );
    expect(statements).toContain(
      'CREATE UNIQUE INDEX IF NOT EXISTS "access_logs_timestamp_path_key" ON "web"."access_logs" USING btree ("timestamp", "path")',
    );
    expect(statements.at(-1)).toContain('CREATE TABLE IF NOT EXISTS "web"."etl_checkpoints"');
  });

  it('only adds what is missing from an existing table', () => {
    const layout = buildLayout(options({ columns: { country: 'text' } }), accessRecordSchema);
    const existing = new Map<string, string>(
      layout.columns.filter((c) => c.name !== 'country').map((c) => [c.name, c.type]),
    );
    existing.set('timestamp', 'timestamp with time zone');
    existing.set('status', 'integer');
    const { statements, warnings } = planTable(layout, {
      schemaExists: true,
      relkind: 'p',
      comment: 'etl: partition=day',
      columns: existing,
      indexes: new Set(['access_logs_timestamp_brin']),
      partitions: new Set(['access_logs_default']),
      checkpointTable: true,
    });
    expect(statements).toEqual(['ALTER TABLE "public"."access_logs" ADD COLUMN IF NOT EXISTS "country" text']);
    expect(warnings).toEqual([expect.stringContaining('column status is integer')]);
  });

  it('keeps index names within 63 bytes', () => {
    const name = indexName('a'.repeat(48), ['very_long_column_name', 'another_long_column'], 'btree');
    expect(name.length).toBeLessThanOrEqual(63);
    expect(indexName('t', ['a'], 'brin')).toBe('t_a_brin');
  });

  it('upserts through a staging table, the last row of a key winning', () => {
    const layout = buildLayout(
      options({
        record_schema: 'none',
        columns: { window_start: 'timestamptz', path: 'text', requests: 'bigint' },
        time_column: 'window_start',
        unique_key: ['window_start', 'path'],
        on_conflict: 'update',
      }),
      undefined,
    );
    const staging = stagingOf(layout, 'update');
    expect(staging?.move).toContain('SELECT DISTINCT ON ("window_start", "path")');
    expect(staging?.move).toContain('ORDER BY "window_start", "path", etl_ord DESC');
    expect(staging?.move).toContain('DO UPDATE SET "requests" = EXCLUDED."requests", "extra" = EXCLUDED."extra"');
    expect(stagingOf(buildLayout(options(), accessRecordSchema), 'ignore')).toBeUndefined();
  });
});

describe('connection target', () => {
  it('prefers url, then DATABASE_URL, then the embedded database under data_dir', () => {
    expect(resolveTarget('postgres://a@h/db', '.etl', { DATABASE_URL: 'postgres://b@h/db' })).toEqual({
      kind: 'server',
      url: 'postgres://a@h/db',
    });
    expect(resolveTarget(undefined, '.etl', { DATABASE_URL: 'postgres://b@h/db' })).toEqual({
      kind: 'server',
      url: 'postgres://b@h/db',
    });
    const embedded = resolveTarget(undefined, '/srv/etl', {});
    expect(embedded).toEqual({ kind: 'embedded', dir: '/srv/etl/pgdata' });
  });

  it('masks passwords', () => {
    expect(maskUrl('postgres://etl:s3cret@db:5432/logs')).toBe('postgres://etl:***@db:5432/logs');
    expect(maskUrl('postgres://etl@db/logs')).toBe('postgres://etl@db/logs');
    expect(maskUrl('not a url://u:p@x')).not.toContain(':p@');
  });
});
