/**
 * The geoip transform: each record's address looked up in one or more MMDB files (mmdb-lib's Reader, through the
 * `maxmind` package), the answers added as flat prefixed fields. Answers are cached per address (IPv4 written
 * as dotted decimal by its value, any other text by the text); a database file replaced on disk is read again
 * and swapped in between batches, the caches emptied.
 */
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { BlockList, isIP } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import { Reader, type Response } from 'maxmind';
import { errorMessage } from '../../../engine/errors.ts';
import type { OperatorContext, PortRecords, Transform } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import { AnswerCache, recordUpdater } from '../../shared/enrich.ts';
import { fieldReader } from '../../shared/fields.ts';
import { ipv4Value } from '../../shared/ip-address.ts';
import { Ipv4Cache } from '../../shared/ipv4-cache.ts';
import { type FileWatch, watchFile } from '../../shared/watch-file.ts';
import { GEO_FIELD_NAMES } from './fields.ts';
import type { GeoipOptions } from './schema.ts';

/** The database used when the options name none: CC0 package data, country codes only (see README). */
export function bundledDatabase(): string {
  return createRequire(import.meta.url).resolve(
    '@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb',
  );
}

/**
 * Addresses no database places: private, loopback, link-local, shared (CGNAT), documentation, benchmarking,
 * multicast and reserved blocks (IANA special-purpose registries). Checked before the lookup because some
 * databases answer for them (a country for 192.168.0.0/16) and the answer would be wrong.
 */
export const RESERVED_V4: readonly (readonly [string, number])[] = [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
];
export const RESERVED_V6: readonly (readonly [string, number])[] = [
  ['::', 127],
  ['64:ff9b:1::', 48],
  ['100::', 64],
  ['2001:2::', 48],
  ['2001:10::', 28],
  ['2001:20::', 28],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10],
  ['ff00::', 8],
];
const RESERVED = new BlockList();
for (const [net, bits] of RESERVED_V4) RESERVED.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of RESERVED_V6) RESERVED.addSubnet(net, bits, 'ipv6');

/**
 * The first octet (IPv4) or group (IPv6) of each address some reserved block holds, marked: most addresses
 * start with an unmarked one and are public without `BlockList.check`, which parses the address again across
 * the C++ boundary: `resolve` of each of the 34,327 distinct addresses of 300,000 bench lines took 2.03–2.17 µs
 * with it, 1.72–1.78 µs with the table (CPU, both versions interleaved in one process, three runs, loaded).
 */
const V4_LEADS = new Uint8Array(256);
const V6_LEADS = new Uint8Array(65536);
for (const [net, bits] of RESERVED_V4) markLeads(V4_LEADS, Number(net.split('.')[0]), 8, bits);
for (const [net, bits] of RESERVED_V6) markLeads(V6_LEADS, leadOf(net, 6), 16, bits);

function markLeads(leads: Uint8Array, lead: number, width: number, bits: number): void {
  const span = bits >= width ? 1 : 2 ** (width - bits);
  leads.fill(1, lead, lead + span);
}

/** The first octet (decimal, before `.`) or group (hex, before `:`; 0 when the text starts with `::`). */
function leadOf(address: string, family: 4 | 6): number {
  let lead = 0;
  for (let i = 0; i < address.length; i++) {
    const c = address.charCodeAt(i);
    if (family === 4) {
      if (c === 46) break;
      lead = lead * 10 + (c - 48);
    } else {
      if (c === 58) break;
      lead = lead * 16 + (c <= 57 ? c - 48 : (c | 0x20) - 87);
    }
  }
  return lead;
}

/** Whether a reserved block holds `address` (valid, as `isIP` said: `family`). */
export function isReserved(address: string, family: 4 | 6): boolean {
  if ((family === 4 ? V4_LEADS : V6_LEADS)[leadOf(address, family)] !== 1) return false;
  return RESERVED.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

type Value = string | number | null;
/** Values in the order of GEO_FIELD_NAMES. */
type Answer = readonly Value[];

const INDEX = Object.fromEntries(GEO_FIELD_NAMES.map((name, i) => [name, i])) as Record<
  (typeof GEO_FIELD_NAMES)[number],
  number
>;
const NULLS: Answer = Object.freeze(GEO_FIELD_NAMES.map(() => null));

/** An address as logged, made ready for a lookup; undefined when it is no address or one no database places. */
export function lookupAddress(raw: string): { address: string; reserved: boolean } | undefined {
  let address = raw.trim();
  if (address.startsWith('[') && address.endsWith(']')) address = address.slice(1, -1);
  let family = isIP(address);
  if (family === 0) return undefined;
  // IPv4-mapped IPv6 (`::ffff:192.0.2.1`, as dual-stack servers log IPv4 clients) is the IPv4 address.
  if (family === 6 && /^::ffff:/i.test(address) && isIP(address.slice(7)) === 4) {
    address = address.slice(7);
    family = 4;
  }
  return { address, reserved: isReserved(address, family === 4 ? 4 : 6) };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
/** A coordinate the declared range admits; a database's out-of-range value is no answer (and no bad row). */
const within = (v: number | null, bound: number): number | null => (v !== null && Math.abs(v) <= bound ? v : null);

export class GeoipTransform implements Transform {
  /** `reloaded` (path) once a changed database is in use; `reload_failed` (path, error) when it could not be read. */
  readonly events = new EventEmitter();
  private readonly paths: string[];
  private readers: Array<Reader<Response>> = [];
  private readonly watches: FileWatch[] = [];
  private readonly cache: AnswerCache<Answer>;
  /** In front of `cache` for dotted IPv4 (most addresses): no text hashed (shared/ipv4-cache.ts). */
  private readonly v4Cache: Ipv4Cache<Answer> | undefined;
  private readonly build: (record: EtlRecord, values: readonly unknown[]) => EtlRecord;
  private readonly read: (record: EtlRecord) => unknown;
  private readonly regionNames: Intl.DisplayNames;
  private readonly countryNames = new Map<string, string | null>();
  private readonly reloads: { inc(value?: number): void };
  private closed = false;

  private readonly options: GeoipOptions;
  private readonly ctx: OperatorContext;

  constructor(options: GeoipOptions, ctx: OperatorContext) {
    this.options = options;
    this.ctx = ctx;
    const databases =
      options.database === undefined
        ? [bundledDatabase()]
        : typeof options.database === 'string'
          ? [options.database]
          : [...options.database];
    this.paths = databases.map((p) => (isAbsolute(p) ? p : resolve(ctx.baseDir, p)));
    const cacheSize = options.cache_size ?? 50000;
    this.cache = new AnswerCache(cacheSize, ctx.metrics, 'etl_geoip', 'Addresses');
    this.v4Cache = cacheSize > 0 ? new Ipv4Cache(cacheSize) : undefined;
    const prefix = options.prefix ?? 'geo_';
    this.build = recordUpdater(GEO_FIELD_NAMES.map((name) => `${prefix}${name}`));
    this.read = fieldReader(options.source_field ?? 'client_ip');
    this.regionNames = new Intl.DisplayNames([options.language ?? 'en', 'en'], { type: 'region', fallback: 'none' });
    this.reloads = ctx.metrics.counter(
      'etl_geoip_database_reloads_total',
      'Database files reopened after they changed on disk',
    );
  }

  async open(): Promise<void> {
    this.readers = [];
    for (const [i, path] of this.paths.entries()) {
      // Watching first: a file replaced while it is read is then read again.
      this.watches.push(
        await watchFile(
          path,
          () => void this.reload(i),
          (error) => this.ctx.logger.warn(`geoip: cannot watch ${path} for changes: ${error.message}`),
        ),
      );
      const reader = await openDatabase(path);
      // Unless a change seen meanwhile was read already (that read came later, so it is not older).
      this.readers[i] ??= reader;
    }
  }

  private async reload(i: number): Promise<void> {
    const path = this.paths[i] as string;
    try {
      const reader = await openDatabase(path);
      if (this.closed) return;
      this.readers[i] = reader;
      this.cache.clear();
      this.v4Cache?.clear();
      this.reloads.inc();
      this.ctx.logger.info(`geoip: reopened ${path} (built ${reader.metadata.buildEpoch.toISOString()})`);
      this.events.emit('reloaded', path);
    } catch (error) {
      this.ctx.logger.warn(`geoip: ${errorMessage(error)}; the previous one stays in use`);
      this.events.emit('reload_failed', path, error);
    }
  }

  process(records: EtlRecord[]): PortRecords {
    const out: EtlRecord[] = new Array(records.length);
    const { build, v4Cache } = this;
    let v4Hits = 0;
    let v4Lookups = 0;
    for (let r = 0; r < records.length; r++) {
      const record = records[r] as EtlRecord;
      const raw = this.read(record);
      let answer: Answer | undefined;
      if (typeof raw !== 'string') answer = NULLS;
      else {
        const v4 = v4Cache === undefined ? -1 : ipv4Value(raw);
        if (v4 >= 0) {
          v4Lookups++;
          answer = (v4Cache as Ipv4Cache<Answer>).get(v4);
          if (answer !== undefined) v4Hits++;
          else {
            answer = this.resolve(raw);
            (v4Cache as Ipv4Cache<Answer>).set(v4, answer);
          }
        } else answer = this.cache.get(raw, this.resolveFn);
      }
      out[r] = build(record, answer);
    }
    this.cache.tally(v4Hits, v4Lookups);
    this.cache.publish();
    return { default: out };
  }

  private readonly resolveFn = (raw: string): Answer => this.resolve(raw);

  /** The fields for one address: each from the first database that has it. */
  resolve(raw: string): Answer {
    const target = lookupAddress(raw);
    if (target === undefined || target.reserved) return NULLS;
    const values: Value[] = [...NULLS];
    const set = (field: (typeof GEO_FIELD_NAMES)[number], value: Value) => {
      const i = INDEX[field];
      if (values[i] === null) values[i] = value;
    };
    const lang = this.options.language ?? 'en';
    const name = (names: unknown): string | null =>
      isObject(names) ? (str(names[lang]) ?? str(names[lang.split('-')[0] as string]) ?? str(names.en)) : null;
    for (const reader of this.readers) {
      let data: unknown;
      try {
        data = reader.get(target.address);
      } catch {
        // An IPv6 address in an IPv4-only database: that database has no answer.
        continue;
      }
      if (!isObject(data)) continue;
      const country = isObject(data.country) ? data.country : undefined;
      set('country_code', (str(country?.iso_code) ?? str(data.country_code))?.toUpperCase() ?? null);
      set('country', name(country?.names));
      const subdivision = Array.isArray(data.subdivisions) ? data.subdivisions[0] : undefined;
      if (isObject(subdivision)) {
        set('subdivision_code', str(subdivision.iso_code));
        set('subdivision', name(subdivision.names));
      }
      if (isObject(data.city)) set('city', name(data.city.names));
      if (isObject(data.location)) {
        set('latitude', within(num(data.location.latitude), 90));
        set('longitude', within(num(data.location.longitude), 180));
      }
      const asn = num(data.autonomous_system_number);
      if (asn !== null && Number.isInteger(asn) && asn >= 0 && asn <= 0xffffffff) set('asn', asn);
      set('as_org', str(data.autonomous_system_organization));
    }
    const code = values[INDEX.country_code];
    // Databases with codes only (the bundled one): the name from the code, as ICU knows it.
    if (values[INDEX.country] === null && typeof code === 'string') values[INDEX.country] = this.countryName(code);
    return Object.freeze(values);
  }

  private countryName(code: string): string | null {
    let name = this.countryNames.get(code);
    if (name === undefined) {
      try {
        name = this.regionNames.of(code) ?? null;
      } catch {
        name = null;
      }
      this.countryNames.set(code, name);
    }
    return name;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const watch of this.watches.splice(0)) watch.close();
    this.readers = [];
  }
}

/** Reads one MMDB file whole; a clear error for a missing, compressed or broken file. */
export async function openDatabase(path: string): Promise<Reader<Response>> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(
      code === 'ENOENT'
        ? `GeoIP database ${path} does not exist (a relative path is taken from the directory etl runs in; ` +
            'without `database:` the bundled country database is used)'
        : `cannot read GeoIP database ${path}: ${errorMessage(error)}`,
    );
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    throw new Error(`GeoIP database ${path} is gzip-compressed: decompress it first (gunzip)`);
  }
  try {
    return new Reader<Response>(bytes);
  } catch (error) {
    throw new Error(`${path} is not a MaxMind DB (MMDB) file: ${errorMessage(error)}`);
  }
}
