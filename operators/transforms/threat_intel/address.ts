/**
 * Addresses and CIDR blocks as the trie takes them (big-endian bytes), parsed by ipaddr.js. IPv4 is accepted
 * only in dotted four-part decimal: ipaddr.js also reads `1.2.3` or `0x7f.1` the way inet_aton does, which no
 * list or log means. An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is its IPv4 address.
 */
import ipaddr from 'ipaddr.js';

export interface Prefix {
  readonly bytes: number[];
  /** Prefix length in bits. */
  readonly length: number;
  readonly version: 4 | 6;
}

/** The address `text` as bytes (4 or 16), or undefined when it is not an IP address (a host name, `-`). */
export function addressBytes(text: string): number[] | undefined {
  if (text.includes(':')) {
    const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
    if (!ipaddr.IPv6.isValid(bare)) return undefined;
    const address = ipaddr.IPv6.parse(bare);
    return address.isIPv4MappedAddress() ? address.toIPv4Address().octets : address.toByteArray();
  }
  return dottedQuad(text);
}

/**
 * Dotted four-part decimal IPv4, read by hand: this runs once per record, and ipaddr.js takes a regular
 * expression to refuse the inet_aton forms and then a second to parse (about 1 µs an address, a third of the
 * transform's time in bench/threat-intel.ts). Leading zeros are refused as ipaddr.js's four-part check does
 * (`010.0.0.1` is octal to some readers and decimal to others).
 */
function dottedQuad(text: string): number[] | undefined {
  const bytes = [0, 0, 0, 0];
  let part = 0;
  let digits = 0;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits === 1 && value === 0) return undefined;
      value = value * 10 + (c - 48);
      if (++digits > 3 || value > 255) return undefined;
    } else if (c === 46 && digits > 0 && part < 3) {
      bytes[part++] = value;
      value = 0;
      digits = 0;
    } else return undefined;
  }
  if (part !== 3 || digits === 0) return undefined;
  bytes[3] = value;
  return bytes;
}

/**
 * An address (a block of one) or a CIDR block, with the host bits cleared (`192.0.2.7/24` is `192.0.2.0/24`);
 * undefined when `text` is neither.
 */
export function parsePrefix(text: string): Prefix | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) {
    const bytes = addressBytes(text);
    if (bytes === undefined) return undefined;
    return { bytes, length: bytes.length * 8, version: bytes.length === 4 ? 4 : 6 };
  }
  const lengthText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lengthText)) return undefined;
  const address = text.slice(0, slash);
  const length = Number(lengthText);
  if (address.includes(':')) {
    if (!ipaddr.IPv6.isValid(address) || length > 128) return undefined;
    const parsed = ipaddr.IPv6.parse(address);
    // `::ffff:192.0.2.0/120` is an IPv4 block: addresses are looked up as IPv4 once unmapped.
    if (parsed.isIPv4MappedAddress() && length >= 96) {
      return { bytes: masked(parsed.toIPv4Address().octets, length - 96), length: length - 96, version: 4 };
    }
    return { bytes: masked(parsed.toByteArray(), length), length, version: 6 };
  }
  const bytes = dottedQuad(address);
  if (bytes === undefined || length > 32) return undefined;
  return { bytes: masked(bytes, length), length, version: 4 };
}

function masked(bytes: number[], length: number): number[] {
  return bytes.map((byte, i) => {
    const keep = Math.max(0, Math.min(8, length - i * 8));
    return byte & ((0xff << (8 - keep)) & 0xff);
  });
}

/** `192.0.2.0/24`, `2001:db8::/32`: the block in its usual text. */
export function prefixText(prefix: Prefix): string {
  const address = ipaddr.fromByteArray(prefix.bytes);
  return `${address.toString()}/${prefix.length}`;
}
