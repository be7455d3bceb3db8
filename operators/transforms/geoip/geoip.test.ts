import { once } from 'node:events';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadPipelinesFromString } from '../../../engine/config/load.ts';
import { type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import { createAjv } from '../../../engine/schema/ajv.ts';
import { recordingContext } from '../../../test/support/context.ts';
import { registry } from '../../all.ts';
import type { GeoipTransform } from './geoip.ts';
import geoip from './index.ts';
import type { GeoipOptions } from './schema.ts';
import { asnRecord, buildMmdb, cityRecord } from './test-support.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-geoip-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const open: GeoipTransform[] = [];
afterEach(async () => {
  for (const t of open.splice(0)) await t.close();
});

function options(patch: Partial<GeoipOptions> = {}): GeoipOptions {
  const o = structuredClone(patch) as Record<string, unknown>;
  const validate = createAjv().compile(geoip.schema);
  if (!validate(o)) throw new Error(JSON.stringify(validate.errors));
  return o as GeoipOptions;
}

async function transform(patch: Partial<GeoipOptions> = {}) {
  const ctx = recordingContext({ baseDir: dir });
  const t = (await geoip.create(options(patch), ctx)) as GeoipTransform;
  open.push(t);
  await t.open?.();
  return { t, ctx };
}

const enrich = (t: GeoipTransform, ips: unknown[], field = 'client_ip'): EtlRecord[] =>
  t.process(ips.map((ip) => ({ [field]: ip, status: 200 }))).default as EtlRecord[];

const NULL_GEO = {
  geo_country_code: null,
  geo_country: null,
  geo_subdivision_code: null,
  geo_subdivision: null,
  geo_city: null,
  geo_latitude: null,
  geo_longitude: null,
  geo_asn: null,
  geo_as_org: null,
};

describe('geoip with the bundled country database', () => {
  it('knows the country of public IPv4 and IPv6 addresses, IPv4-mapped ones too', async () => {
    const { t } = await transform();
    const out = enrich(t, ['8.8.8.8', '1.1.1.1', '81.2.69.160', '2001:4860:4860::8888', '::ffff:81.2.69.160']);
    expect(out.map((r) => [r.geo_country_code, r.geo_country])).toEqual([
      ['US', 'United States'],
      ['AU', 'Australia'],
      ['GB', 'United Kingdom'],
      ['US', 'United States'],
      ['GB', 'United Kingdom'],
    ]);
    // A country database: nothing finer.
    expect(out[0]).toEqual({
      client_ip: '8.8.8.8',
      status: 200,
      ...NULL_GEO,
      geo_country_code: 'US',
      geo_country: 'United States',
    });
  });

  it('gives null fields, never an error, for private, reserved and unparseable addresses', async () => {
    const { t } = await transform();
    // The package's data places 192.168.1.1 in a country: private blocks are never looked up.
    const inputs = ['192.168.1.1', '10.0.0.1', '127.0.0.1', '100.64.0.1', '::1', 'fe80::1', 'fd12::1', '2001:db8::1'];
    const garbage = ['not-an-ip', '', '999.1.1.1', 'example.com', '1.2.3.4:80', '::ffff:10.0.0.1', null, 42, undefined];
    for (const r of enrich(t, [...inputs, ...garbage])) expect(r).toMatchObject(NULL_GEO);
  });

  it('adds its fields to the records themselves (changesRecords), keeping where each came from', async () => {
    const { t } = await transform();
    const input: EtlRecord = { client_ip: '8.8.8.8', [ORIGIN]: { source: 'logs', line: 3 } };
    const [out] = t.process([input]).default as EtlRecord[];
    expect(out?.[ORIGIN]).toEqual({ source: 'logs', line: 3 });
    expect(out?.geo_country_code).toBe('US');
    expect(out).toBe(input);
  });

  it('names countries in the language asked for', async () => {
    const { t } = await transform({ language: 'fr' });
    expect(enrich(t, ['81.2.69.160'])[0]?.geo_country).toBe('Royaume-Uni');
  });

  it('answers repeated addresses from its cache, and says how often', async () => {
    const { t, ctx } = await transform();
    enrich(t, ['8.8.8.8', '8.8.8.8', '1.1.1.1', '8.8.8.8']);
    expect(ctx.values.get('etl_geoip_cache_hits_total')).toBe(2);
    expect(ctx.values.get('etl_geoip_cache_misses_total')).toBe(2);
    expect(ctx.values.get('etl_geoip_cache_hit_ratio')).toBe(0.5);
  });
});

const city = buildMmdb([
  [
    '81.2.69.0/24',
    cityRecord({
      country: 'GB',
      countryName: 'United Kingdom',
      subdivision: ['ENG', 'England'],
      city: 'London',
      germanCity: 'London (de)',
      location: [51.5142, -0.0931],
    }),
  ],
  [
    '2a02:cf40::/32',
    cityRecord({
      country: 'DE',
      countryName: 'Germany',
      subdivision: ['BE', 'Land Berlin'],
      city: 'Berlin',
      location: [52.52, 13.405],
    }),
  ],
  ['203.0.114.0/24', cityRecord({ country: 'FR', countryName: 'France' })],
]);
const asn = buildMmdb(
  [
    ['81.2.64.0/20', asnRecord(20712, 'Andrews & Arnold Ltd')],
    ['2a02:cf40::/29', asnRecord(4294967000, 'Big Number AS')],
  ],
  'GeoLite2-ASN',
);

describe('geoip with City and ASN databases', () => {
  writeFileSync(join(dir, 'City.mmdb'), city);
  writeFileSync(join(dir, 'ASN.mmdb'), asn);

  it('merges every field from the files, IPv4 and IPv6', async () => {
    const { t } = await transform({ database: ['City.mmdb', 'ASN.mmdb'] });
    const [london, berlin, france, nowhere] = enrich(t, ['81.2.69.160', '2a02:cf40:1::7', '203.0.114.9', '8.8.8.8']);
    expect(london).toMatchObject({
      geo_country_code: 'GB',
      geo_country: 'United Kingdom',
      geo_subdivision_code: 'ENG',
      geo_subdivision: 'England',
      geo_city: 'London',
      geo_latitude: 51.5142,
      geo_longitude: -0.0931,
      geo_asn: 20712,
      geo_as_org: 'Andrews & Arnold Ltd',
    });
    expect(berlin).toMatchObject({
      geo_country_code: 'DE',
      geo_city: 'Berlin',
      geo_subdivision: 'Land Berlin',
      geo_latitude: 52.52,
      geo_asn: 4294967000,
    });
    expect(france).toMatchObject({ ...NULL_GEO, geo_country_code: 'FR', geo_country: 'France' });
    expect(nowhere).toMatchObject(NULL_GEO);
  });

  it('reads another source field, and takes names in the language asked for where the database has them', async () => {
    const { t } = await transform({ database: 'City.mmdb', language: 'de', source_field: 'ip', prefix: 'where_' });
    const [r] = enrich(t, ['81.2.69.1'], 'ip');
    expect(r).toMatchObject({ where_city: 'London (de)', where_subdivision: 'England', where_asn: null });
    expect(r).not.toHaveProperty('geo_city');
  });

  it('emits records its declared schema accepts', async () => {
    const { t } = await transform({ database: ['City.mmdb', 'ASN.mmdb'] });
    const declared = geoip.outputSchemas?.(options(), { type: 'object' })?.default;
    const validate = createAjv().compile({ ...declared });
    for (const r of enrich(t, ['81.2.69.160', '2a02:cf40:1::7', '10.0.0.1', 'junk'])) {
      expect(validate(r), JSON.stringify(validate.errors)).toBe(true);
    }
  });

  it('takes no answer a database gives out of range, and writes country codes upper case', async () => {
    writeFileSync(
      join(dir, 'odd.mmdb'),
      buildMmdb([
        ['198.51.99.0/24', { country: { iso_code: 'gb' }, location: { latitude: 95.5, longitude: -200 } }],
        ['2a02:c0::/32', { country_code: 'de', autonomous_system_number: 2 ** 33 }],
      ]),
    );
    const { t } = await transform({ database: 'odd.mmdb' });
    const [v4, v6] = enrich(t, ['198.51.99.1', '2a02:c0::1']);
    expect(v4).toMatchObject({
      geo_country_code: 'GB',
      geo_country: 'United Kingdom',
      geo_latitude: null,
      geo_longitude: null,
    });
    expect(v6).toMatchObject({ geo_country_code: 'DE', geo_country: 'Germany', geo_asn: null });
  });

  it('refuses a missing, compressed or broken database with a clear message', async () => {
    writeFileSync(join(dir, 'broken.mmdb'), 'not a database');
    writeFileSync(join(dir, 'gz.mmdb'), Buffer.from([0x1f, 0x8b, 8, 0]));
    await expect(transform({ database: 'missing.mmdb' })).rejects.toThrow(
      /GeoIP database .*missing\.mmdb does not exist/,
    );
    await expect(transform({ database: 'gz.mmdb' })).rejects.toThrow(/gzip-compressed: decompress it first/);
    await expect(transform({ database: 'broken.mmdb' })).rejects.toThrow(/broken\.mmdb is not a MaxMind DB/);
  });
});

describe('geoip reopens a database file that changes on disk', () => {
  const v1 = buildMmdb([
    ['81.2.69.0/24', cityRecord({ country: 'GB', countryName: 'United Kingdom', city: 'London' })],
  ]);
  const v2 = buildMmdb([
    ['81.2.69.0/24', cityRecord({ country: 'GB', countryName: 'United Kingdom', city: 'Croydon' })],
  ]);
  const v3 = buildMmdb([['81.2.69.0/24', cityRecord({ country: 'IE', countryName: 'Ireland', city: 'Dublin' })]]);

  it('replaced by a rename (as geoipupdate does), or rewritten in place; a broken update keeps the old one', async () => {
    const file = join(dir, 'live.mmdb');
    writeFileSync(file, v1);
    const { t, ctx } = await transform({ database: 'live.mmdb' });
    expect(enrich(t, ['81.2.69.160'])[0]?.geo_city).toBe('London');

    let reloaded = once(t.events, 'reloaded');
    writeFileSync(join(dir, 'live.mmdb.tmp'), v2);
    renameSync(join(dir, 'live.mmdb.tmp'), file);
    expect(await reloaded).toEqual([file]);
    // The cache held London for this address: it was emptied.
    expect(enrich(t, ['81.2.69.160'])[0]?.geo_city).toBe('Croydon');

    const failed = once(t.events, 'reload_failed');
    writeFileSync(file, 'garbage');
    await failed;
    expect(enrich(t, ['81.2.69.160'])[0]?.geo_city).toBe('Croydon');
    expect(ctx.logs.some((l) => l.level === 'warn' && l.message.includes('the previous one stays in use'))).toBe(true);

    reloaded = once(t.events, 'reloaded');
    writeFileSync(file, v3);
    await reloaded;
    expect(enrich(t, ['81.2.69.160'])[0]).toMatchObject({ geo_country_code: 'IE', geo_city: 'Dublin' });
    expect(ctx.values.get('etl_geoip_database_reloads_total')).toBe(2);
  });
});

describe('geoip at validate time', () => {
  const yaml = (field: string) => `apiVersion: etl/v1
kind: Pipeline
metadata: { name: geo }
spec:
  sources:
    logs: { type: file, paths: [logs/*.log] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
    located: { type: geoip, inputs: [parsed], source_field: ${field} }
  sinks:
    out: { type: file, inputs: [located], path: out.csv, format: csv, fields: [geo_country_code, geo_asn, status] }
`;

  it('refuses a misspelt source field at its line and column, and knows the fields it adds', async () => {
    const bad = await loadPipelinesFromString(yaml('client_pi'), 'p.yaml', { registry, env: {} });
    const errors = bad.diagnostics.filter((d) => d.severity === 'error');
    expect(errors.map((d) => [d.code, d.line, d.column, d.message])).toEqual([
      ['ETL_GRAPH_UNKNOWN_FIELD', 9, 61, 'unknown field `client_pi` — did you mean `client_ip`?'],
    ]);
    const good = await loadPipelinesFromString(yaml('client_ip'), 'p.yaml', { registry, env: {} });
    expect(good.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  });

  it('refuses a compressed archive named as a database, at its place', async () => {
    const archive = yaml('client_ip').replace(
      'source_field: client_ip }',
      'source_field: client_ip, database: [GeoLite2-City.mmdb, GeoLite2-ASN_20261201.tar.gz] }',
    );
    const result = await loadPipelinesFromString(archive, 'p.yaml', { registry, env: {} });
    expect(result.diagnostics.map((d) => [d.severity, d.line, d.column, d.message])).toEqual([
      ['error', 9, 103, '`GeoLite2-ASN_20261201.tar.gz` is a compressed archive, not an MMDB file'],
    ]);
  });

  it('warns when a second stage would replace the fields of a first one', async () => {
    const twice = yaml('client_ip').replace(
      '  sinks:\n    out: { type: file, inputs: [located]',
      '    again: { type: geoip, inputs: [located] }\n  sinks:\n    out: { type: file, inputs: [again]',
    );
    const result = await loadPipelinesFromString(twice, 'p.yaml', { registry, env: {} });
    expect(result.diagnostics.map((d) => [d.severity, d.line, d.message.slice(0, 70)])).toEqual([
      ['warning', 10, 'the records reaching this stage already carry `geo_country_code`, `geo'],
    ]);
  });
});
