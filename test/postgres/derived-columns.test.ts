/**
 * A field a stage upstream adds becomes a typed column with no configuration: the postgres sink derives its
 * columns from the record schema reaching it. Through the loader and the runtime, against the real server and
 * the embedded database: a first pipeline creates the table, a second one with an enrichment stage in front of
 * the same table adds its columns (ALTER TABLE … ADD COLUMN) and fills them.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadPipelinesFromString } from '../../engine/config/load.ts';
import { defineTransform, type OperatorDefinition } from '../../engine/operator.ts';
import type { EtlRecord } from '../../engine/record.ts';
import { withFields } from '../../engine/record-schema.ts';
import { runPipeline } from '../../engine/runtime/run.ts';
import { registry } from '../../operators/all.ts';
import { type Mode, PG_URL, Target } from './helpers.ts';

const COUNTRIES = ['FR', 'DE', 'JP', 'BR'];

/** An enrichment as the geoip operator will be: flat, prefixed fields added to whatever it receives. */
const geo = defineTransform({
  type: 'test_geo',
  stability: 'alpha',
  summary: 'adds a country and a latitude to each record',
  schema: {
    $id: 'https://etl.dev/schemas/operators/transforms/test_geo.json',
    type: 'object',
    additionalProperties: false,
    properties: {},
  } as const,
  examples: [{}],
  accepts: ['access'],
  outputs: { default: 'access' },
  outputSchemas: (_options, input) => ({
    default: withFields(input, {
      geo_country: { type: ['string', 'null'], description: 'ISO 3166-1 alpha-2 country code.' },
      geo_latitude: { type: ['number', 'null'], minimum: -90, maximum: 90, description: 'Latitude in degrees.' },
    }),
  }),
  create: () => ({
    process: (records: EtlRecord[]) => ({
      default: records.map((r, i) => ({ ...r, geo_country: COUNTRIES[i % 4], geo_latitude: 48.8566 - (i % 3) })),
    }),
  }),
});

const operators = [...registry, geo] as OperatorDefinition[];

describe.each<Mode>(['server', 'embedded'])('columns derived from the input (%s)', (mode) => {
  let target: Target;
  beforeEach(async () => {
    target = await Target.create(mode);
  });
  afterEach(async () => {
    await target.dispose();
  });

  async function apply(name: string, enrich: boolean): Promise<void> {
    const yaml = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: ${name} }
spec:
  settings: { data_dir: ${target.dataDir} }
  sources:
    gen: { type: generator, count: 300, seed: 5, malformed_ratio: 0, start_time: "2026-11-01T00:00:00Z" }
  operators:
    parsed: { type: parse, inputs: [gen], format: nginx_combined }
${enrich ? '    located: { type: test_geo, inputs: [parsed] }\n' : ''}  sinks:
    store:
      type: postgres
      inputs: [${enrich ? 'located' : 'parsed'}]
${mode === 'server' ? `      url: ${PG_URL}\n` : ''}      schema: ${target.schema}
      table: requests
      indexes: [{ columns: [${enrich ? 'geo_country' : 'status'}] }]
`;
    const { pipelines, diagnostics } = await loadPipelinesFromString(yaml, `${name}.yaml`, {
      registry: operators,
      env: {},
    });
    expect(diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const result = await runPipeline(pipelines[0] as (typeof pipelines)[number]);
    expect(result.error).toBeUndefined();
    expect(result.ok).toBe(true);
  }

  it('adds a typed column for each field an enrichment adds, and fills it', async () => {
    await apply('plain', false);
    await apply('located', true);
    const columns = await target.query(
      `SELECT column_name::text AS name, data_type::text AS type FROM information_schema.columns
        WHERE table_schema = $1 AND table_name = 'requests' AND column_name IN ('status', 'client_ip', 'geo_country', 'geo_latitude')
        ORDER BY ordinal_position`,
      [target.schema],
    );
    expect(columns).toEqual([
      { name: 'client_ip', type: 'inet' },
      { name: 'status', type: 'smallint' },
      { name: 'geo_country', type: 'text' },
      { name: 'geo_latitude', type: 'numeric' },
    ]);
    const [counts] = await target.query(
      `SELECT count(*)::int AS rows, count(geo_country)::int AS located,
              count(DISTINCT geo_country)::int AS countries, max(geo_latitude)::float8 AS lat
         FROM "${target.schema}".requests`,
    );
    expect(counts).toEqual({ rows: 600, located: 300, countries: 4, lat: 48.8566 });
    const indexes = await target.query('SELECT indexname::text AS name FROM pg_indexes WHERE schemaname = $1', [
      target.schema,
    ]);
    expect(indexes.map((i) => i.name)).toContain('requests_geo_country_btree');
  });
});
