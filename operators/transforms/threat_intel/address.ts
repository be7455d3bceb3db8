/**
 * Addresses and CIDR blocks as the trie takes them (big-endian bytes): addresses read as operators/shared/
 * ip-address.ts reads them (dotted four-part decimal IPv4, IPv6 by ipaddr.js), blocks likewise.
 */
import ipaddr from 'ipaddr.js';
import { addressBytes, dottedQuad } from '../../shared/ip-address.ts';

export { addressBytes };

export interface Prefix {
  readonly bytes: number[];
  /** Prefix length in bits. */
  readonly length: number;
  readonly version: 4 | 6;
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
