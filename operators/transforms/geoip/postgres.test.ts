/**
 * geoip and user_agent into the real PostgreSQL server with no configuration but the stages: each added field
 * is a typed column (text, numeric, bigint, boolean), filled, and usable in WHERE clauses as such.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadPipelinesFromString } from '../../../engine/config/load.ts';
import { runPipeline } from '../../../engine/runtime/run.ts';
import { PG_URL, Target } from '../../../test/postgres/helpers.ts';
import { registry } from '../../all.ts';
import { bundledDatabase } from './geoip.ts';
import { asnRecord, buildMmdb, cityRecord } from './test-support.ts';

describe('geoip and user_agent into PostgreSQL', () => {
  let target: Target;
  beforeEach(async () => {
    target = await Target.create('server');
  });
  afterEach(async () => {
    await target.dispose();
  });

  it('make a typed column of every field they add, and fill them', async () => {
    // A City and an ASN database over the lower half of the IPv4 space, the bundled country one for the rest.
    const city = join(target.dataDir, 'city.mmdb');
    const asn = join(target.dataDir, 'asn.mmdb');
    writeFileSync(
      city,
      buildMmdb([
        [
          '0.0.0.0/1',
          cityRecord({
            country: 'GB',
            countryName: 'United Kingdom',
            subdivision: ['ENG', 'England'],
            city: 'London',
            location: [51.5142, -0.0931],
          }),
        ],
      ]),
    );
    writeFileSync(asn, buildMmdb([['0.0.0.0/1', asnRecord(4200000001, 'Private Use AS')]], 'GeoLite2-ASN'));
    const yaml = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: enrich }
spec:
  settings: { data_dir: ${target.dataDir} }
  sources:
    gen: { type: generator, count: 2000, seed: 11, malformed_ratio: 0, start_time: "2026-11-01T00:00:00Z" }
  operators:
    parsed: { type: parse, inputs: [gen], format: nginx_combined }
    located: { type: geoip, inputs: [parsed], database: [${city}, ${asn}, ${bundledDatabase()}] }
    agents: { type: user_agent, inputs: [located] }
  sinks:
    store:
      type: postgres
      inputs: [agents]
      url: ${PG_URL}
      schema: ${target.schema}
      table: requests
      indexes: [{ columns: [geo_country_code] }, { columns: [ua_is_bot] }]
`;
    const { pipelines, diagnostics } = await loadPipelinesFromString(yaml, 'enrich.yaml', { registry, env: {} });
    expect(diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const result = await runPipeline(pipelines[0] as (typeof pipelines)[number]);
    expect(result.error).toBeUndefined();
    expect(result.ok).toBe(true);

    const columns = await target.query(
      `SELECT column_name::text AS name, data_type::text AS type FROM information_schema.columns
        WHERE table_schema = $1 AND table_name = 'requests' AND (column_name LIKE 'geo\\_%' OR column_name LIKE 'ua\\_%')
        ORDER BY ordinal_position`,
      [target.schema],
    );
    expect(Object.fromEntries(columns.map((c) => [c.name, c.type]))).toEqual({
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
    });

    const [counts] = await target.query(
      `SELECT count(*)::int AS rows,
              count(*) FILTER (WHERE geo_city = 'London' AND geo_asn = 4200000001 AND geo_latitude = 51.5142
                                 AND client_ip << '0.0.0.0/1'::inet)::int AS london,
              count(*) FILTER (WHERE geo_city IS NOT NULL AND NOT client_ip << '0.0.0.0/1'::inet)::int AS misplaced,
              count(DISTINCT geo_country_code) FILTER (WHERE client_ip << '128.0.0.0/1'::inet)::int AS countries,
              count(*) FILTER (WHERE ua_is_bot)::int AS bots,
              count(*) FILTER (WHERE NOT ua_is_bot AND ua_device_type = 'mobile')::int AS mobile,
              count(DISTINCT ua_bot_name)::int AS bot_names
         FROM "${target.schema}".requests`,
    );
    const c = counts as Record<string, number>;
    expect(c.rows).toBe(2000);
    expect(c.london).toBeGreaterThan(600);
    expect(c.misplaced).toBe(0);
    expect(c.countries).toBeGreaterThan(10);
    expect(c.bots).toBeGreaterThan(50);
    expect(c.mobile).toBeGreaterThan(200);
    expect(c.bot_names).toBeGreaterThan(3);
  });
});
