/**
 * Writes small MaxMind DB (MMDB) files for tests, with records of the shapes MaxMind's City and ASN databases
 * have, so that tests know every answer. Hand-written: npm has readers of the format (mmdb-lib) but no
 * well-kept writer; the format is short (MaxMind DB File Format Specification 2.0): a binary search tree over
 * address bits, 16 zero bytes, a data section, then a metadata map after `\xAB\xCD\xEFMaxMind.com`.
 * Writes IPv6 trees (record size 32) with IPv4 networks under ::/96, as MaxMind's own databases do.
 */
import { isIPv4 } from 'node:net';

export type MmdbValue = string | number | boolean | readonly MmdbValue[] | { readonly [key: string]: MmdbValue };

/** A network in CIDR notation (`81.2.69.0/24`, `2a02:ff00::/32`) and its record. */
export type MmdbEntries = ReadonlyArray<readonly [string, MmdbValue]>;

interface Node {
  children: [Node | MmdbValue | undefined, Node | MmdbValue | undefined];
}
const isNode = (v: unknown): v is Node => typeof v === 'object' && v !== null && 'children' in v;

function ipv6Bits(address: string): number[] {
  const [head = '', tail] = address.split('::') as [string, string | undefined];
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16)));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  const groups = tail === undefined ? left : [...left, ...new Array(8 - left.length - right.length).fill(0), ...right];
  return groups.flatMap((g) => Array.from({ length: 16 }, (_, i) => (g >> (15 - i)) & 1));
}

function networkBits(cidr: string): number[] {
  const [address = '', length = ''] = cidr.split('/');
  if (isIPv4(address)) {
    const bits = address.split('.').flatMap((o) => Array.from({ length: 8 }, (_, i) => (Number(o) >> (7 - i)) & 1));
    return [...new Array(96).fill(0), ...bits].slice(0, 96 + Number(length));
  }
  return ipv6Bits(address).slice(0, Number(length));
}

function control(type: number, size: number): Buffer {
  const head: number[] = [];
  let sizeBits: number;
  const tail: number[] = [];
  if (size < 29) sizeBits = size;
  else if (size < 285) [sizeBits, tail[0]] = [29, size - 29];
  else if (size < 65821) {
    sizeBits = 30;
    tail.push(((size - 285) >> 8) & 0xff, (size - 285) & 0xff);
  } else {
    sizeBits = 31;
    tail.push(((size - 65821) >> 16) & 0xff, ((size - 65821) >> 8) & 0xff, (size - 65821) & 0xff);
  }
  if (type <= 7) head.push((type << 5) | sizeBits);
  else head.push(sizeBits, type - 7);
  return Buffer.from([...head, ...tail]);
}

function uint(type: number, value: number | bigint): Buffer {
  let hex = BigInt(value).toString(16);
  if (hex === '0') return control(type, 0);
  if (hex.length % 2) hex = `0${hex}`;
  const bytes = Buffer.from(hex, 'hex');
  return Buffer.concat([control(type, bytes.length), bytes]);
}

function encode(value: MmdbValue | bigint): Buffer {
  if (typeof value === 'bigint') return uint(9, value);
  if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8');
    return Buffer.concat([control(2, bytes.length), bytes]);
  }
  if (typeof value === 'boolean') return control(14, value ? 1 : 0);
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= 0 && value <= 0xffffffff) return uint(6, value);
    const bytes = Buffer.alloc(8);
    bytes.writeDoubleBE(value);
    return Buffer.concat([control(3, 8), bytes]);
  }
  if (Array.isArray(value)) return Buffer.concat([control(11, value.length), ...value.map(encode)]);
  const entries = Object.entries(value as { [key: string]: MmdbValue });
  return Buffer.concat([control(7, entries.length), ...entries.flatMap(([k, v]) => [encode(k), encode(v)])]);
}

/** An MMDB file holding `entries` (disjoint networks). */
export function buildMmdb(entries: MmdbEntries, databaseType = 'GeoLite2-City', buildEpoch = 1_700_000_000): Buffer {
  const root: Node = { children: [undefined, undefined] };
  for (const [cidr, value] of entries) {
    const bits = networkBits(cidr);
    let node = root;
    for (let i = 0; i < bits.length - 1; i++) {
      const bit = bits[i] as 0 | 1;
      let next = node.children[bit];
      if (!isNode(next)) {
        next = { children: [undefined, undefined] };
        node.children[bit] = next;
      }
      node = next;
    }
    node.children[bits[bits.length - 1] as 0 | 1] = value;
  }
  // Nodes numbered breadth first, the root 0.
  const nodes: Node[] = [];
  const numbers = new Map<Node, number>();
  for (let queue = [root]; queue.length > 0; ) {
    const node = queue.shift() as Node;
    numbers.set(node, nodes.length);
    nodes.push(node);
    for (const child of node.children) if (isNode(child)) queue.push(child);
  }
  const nodeCount = nodes.length;
  const data: Buffer[] = [];
  const offsets = new Map<MmdbValue, number>();
  let dataSize = 0;
  const tree = Buffer.alloc(nodeCount * 8);
  nodes.forEach((node, n) => {
    node.children.forEach((child, side) => {
      let record = nodeCount;
      if (isNode(child)) record = numbers.get(child) as number;
      else if (child !== undefined) {
        let offset = offsets.get(child);
        if (offset === undefined) {
          const bytes = encode(child);
          offset = dataSize;
          offsets.set(child, offset);
          data.push(bytes);
          dataSize += bytes.length;
        }
        record = nodeCount + 16 + offset;
      }
      tree.writeUInt32BE(record, n * 8 + side * 4);
    });
  });
  const metadata = Buffer.concat([
    control(7, 9),
    encode('node_count'),
    uint(6, nodeCount),
    encode('record_size'),
    uint(5, 32),
    encode('ip_version'),
    uint(5, 6),
    encode('database_type'),
    encode(databaseType),
    encode('languages'),
    encode(['en', 'de']),
    encode('binary_format_major_version'),
    uint(5, 2),
    encode('binary_format_minor_version'),
    uint(5, 0),
    encode('build_epoch'),
    uint(9, BigInt(buildEpoch)),
    encode('description'),
    encode({ en: `etl test ${databaseType}` }),
  ]);
  return Buffer.concat([
    tree,
    Buffer.alloc(16),
    ...data,
    Buffer.from([0xab, 0xcd, 0xef]),
    Buffer.from('MaxMind.com'),
    metadata,
  ]);
}

/** A City-shaped record, as GeoLite2-City has them. */
export function cityRecord(c: {
  country: string;
  countryName: string;
  subdivision?: [string, string];
  city?: string;
  location?: [number, number];
  germanCity?: string;
}): MmdbValue {
  return {
    continent: { code: 'EU', names: { en: 'Europe' } },
    country: { iso_code: c.country, geoname_id: 1, names: { en: c.countryName } },
    ...(c.subdivision ? { subdivisions: [{ iso_code: c.subdivision[0], names: { en: c.subdivision[1] } }] } : {}),
    ...(c.city ? { city: { names: { en: c.city, ...(c.germanCity ? { de: c.germanCity } : {}) } } } : {}),
    ...(c.location
      ? { location: { latitude: c.location[0], longitude: c.location[1], accuracy_radius: 100, time_zone: 'UTC' } }
      : {}),
  };
}

/** An ASN-shaped record, as GeoLite2-ASN has them. */
export function asnRecord(asn: number, org: string): MmdbValue {
  return { autonomous_system_number: asn, autonomous_system_organization: org };
}
