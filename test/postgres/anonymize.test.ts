/**
 * anonymize in front of the postgres sink, on the real server: a truncated address is still stored as inet
 * (and every stored address is its own network), a pseudonym as text; the dead letters it passes on land in
 * their table scrubbed, with no address whose host bits are set.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadPipelinesFromString } from '../../engine/config/load.ts';
import { runPipeline } from '../../engine/runtime/run.ts';
import { PG_URL, Target } from './helpers.ts';

describe('anonymize → postgres (server)', () => {
  let target: Target;
  beforeEach(async () => {
    target = await Target.create('server');
  });
  afterEach(async () => {
    await target.dispose();
  });

  async function apply(name: string, anonymize: string): Promise<void> {
    const yaml = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: ${name} }
spec:
  settings: { data_dir: ${target.dataDir}/${name} }
  sources:
    gen: { type: generator, count: 400, seed: 9, malformed_ratio: 0.05, start_time: "2026-11-01T00:00:00Z" }
  operators:
    parsed: { type: parse, inputs: [gen], format: nginx_combined }
    anon: { type: anonymize, inputs: [parsed, parsed.dead_letter], ${anonymize} }
  sinks:
    store: { type: postgres, inputs: [anon], url: "${PG_URL}", schema: ${target.schema}, table: ${name} }
    rejects: { type: postgres, inputs: [anon.dead_letter], url: "${PG_URL}", schema: ${target.schema}, table: ${name}_rejects, partition: none }
`;
    const { pipelines, diagnostics } = await loadPipelinesFromString(yaml, `${name}.yaml`, {
      env: { ANON_KEY: 'postgres-test-key-9d8c7b6a5f4e' },
    });
    expect(diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const result = await runPipeline(pipelines[0] as (typeof pipelines)[number]);
    expect(result.error).toBeUndefined();
    expect(result.ok).toBe(true);
  }

  const columnType = async (table: string, column: string) =>
    (
      await target.query(
        `SELECT data_type::text AS type FROM information_schema.columns
          WHERE table_schema = $1 AND table_name = $2 AND column_name = $3`,
        [target.schema, table, column],
      )
    )[0]?.type;

  it('stores truncated addresses as inet networks, pseudonyms as text, and scrubbed dead letters', async () => {
    await apply('truncated', 'ip: { mode: truncate }');
    expect(await columnType('truncated', 'client_ip')).toBe('inet');
    const [rows] = await target.query(
      `SELECT count(*)::int AS rows,
              count(*) FILTER (WHERE host(client_ip) = host(network(set_masklen(client_ip, CASE WHEN family(client_ip) = 4 THEN 24 ELSE 48 END))))::int AS networks,
              count(*) FILTER (WHERE "user" IS NOT NULL)::int AS users
         FROM "${target.schema}".truncated`,
    );
    expect(rows).toMatchObject({ users: 0 });
    expect(rows?.rows).toBeGreaterThan(300);
    expect(rows?.networks).toBe(rows?.rows);
    const [letters] = await target.query(
      `SELECT count(*)::int AS letters,
              count(*) FILTER (WHERE raw ~ '(^|[^0-9.])[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[1-9][0-9]{0,2}([^0-9.]|$)')::int AS hosts
         FROM "${target.schema}".truncated_rejects`,
    );
    expect(letters?.letters).toBeGreaterThan(0);
    expect(letters?.hosts).toBe(0);

    // biome-ignore lint/suspicious/noTemplateCurlyInString: pipeline text, interpolated by the loader
    await apply('pseudonymized', 'ip: { mode: pseudonymize }, key: "${secret:ANON_KEY}", key_id: k7');
    expect(await columnType('pseudonymized', 'client_ip')).toBe('text');
    const [pseudo] = await target.query(
      `SELECT count(*)::int AS rows, count(*) FILTER (WHERE client_ip ~ '^k7:[A-Za-z0-9_-]{22}$')::int AS pseudonyms
         FROM "${target.schema}".pseudonymized`,
    );
    expect(pseudo?.pseudonyms).toBe(pseudo?.rows);
  });
});
