/**
 * What becomes of an IP address: truncated to its network (/24, /48 by default), replaced by a keyed pseudonym,
 * or dropped. ipaddr.js parses and masks; node:crypto computes the HMAC.
 */
import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import { isIP, isIPv4 } from 'node:net';
import ipaddr from 'ipaddr.js';

export type AddressMode = 'truncate' | 'pseudonymize' | 'drop' | 'keep';

/** A keyed HMAC-SHA256 whose output names the key it was made with: `<key_id>:<22 base64url characters>`. */
export class Pseudonymizer {
  // A KeyObject rather than the string: inspecting or logging this object never shows the key.
  private readonly key: KeyObject;
  readonly keyId: string;

  constructor(key: string, keyId: string) {
    this.key = createSecretKey(Buffer.from(key, 'utf8'));
    this.keyId = keyId;
  }

  /**
   * `domain` keeps pseudonyms of different kinds apart (an IP and a user name spelt alike map to different
   * values). 128 bits of the HMAC: collisions are negligible at any log volume.
   */
  of(domain: string, value: string): string {
    const mac = createHmac('sha256', this.key).update(domain).update('\0').update(value).digest();
    return `${this.keyId}:${mac.subarray(0, 16).toString('base64url')}`;
  }
}

export interface AddressRule {
  readonly mode: AddressMode;
  readonly ipv4Prefix: number;
  readonly ipv6Prefix: number;
  readonly pseudonymizer?: Pseudonymizer;
  /** Results by address: a log repeats its clients, and an HMAC costs microseconds. Bounded by its owner. */
  readonly memo?: Map<string, string | null>;
}

const MEMO_ENTRIES = 50_000;

/** The address parsed, IPv4-mapped IPv6 (`::ffff:192.0.2.1`) read as the IPv4 address it carries. */
function parseAddress(text: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  // node:net decides (in C++, fast) what is an address: `10.1` and `0x0a.0.0.1` are not, as for ipaddr.js they are.
  const family = isIP(text);
  if (family === 0) return undefined;
  const parsed = ipaddr.parse(text);
  return family === 6 && (parsed as ipaddr.IPv6).isIPv4MappedAddress()
    ? (parsed as ipaddr.IPv6).toIPv4Address()
    : parsed;
}

/** Whether `text` is an IPv4 or IPv6 address (without a port or brackets). */
export function isAddress(text: string): boolean {
  return isIP(text) !== 0;
}

/**
 * The address as the rule leaves it; null when it must go (mode `drop`, or a value that is no address in mode
 * `truncate`: a host name cannot be truncated and is itself personal data).
 */
export function anonymizeAddress(text: string, rule: AddressRule): string | null {
  const memo = rule.memo;
  // Truncating an IPv4 address costs less than looking it up.
  if (memo === undefined || (rule.mode === 'truncate' && isIPv4(text))) return anonymize(text, rule);
  let result = memo.get(text);
  if (result === undefined) {
    result = anonymize(text, rule);
    if (memo.size >= MEMO_ENTRIES) memo.clear();
    memo.set(text, result);
  }
  return result;
}

function anonymize(text: string, rule: AddressRule): string | null {
  const slash = text.indexOf('/');
  if (slash > 0 && (rule.mode === 'truncate' || rule.mode === 'pseudonymize')) return block(text, slash, rule);
  switch (rule.mode) {
    case 'keep':
      return text;
    case 'drop':
      return null;
    case 'pseudonymize': {
      const parsed = parseAddress(text);
      // One pseudonym per address, however it was written (`2001:DB8::1`, `2001:db8:0:0::1`).
      const canonical = parsed === undefined ? text : parsed.toNormalizedString();
      return (rule.pseudonymizer as Pseudonymizer).of('ip', canonical);
    }
    case 'truncate': {
      if (isIPv4(text)) return truncateIPv4(text, rule.ipv4Prefix);
      const parsed = parseAddress(text);
      if (parsed === undefined) return null;
      if (parsed.kind() === 'ipv4') return truncateIPv4(parsed.toString(), rule.ipv4Prefix);
      const bytes = parsed.toByteArray();
      mask(bytes, rule.ipv6Prefix);
      return ipaddr.fromByteArray(bytes).toString();
    }
  }
}

/**
 * A block `address/prefix` (threat_intel's `threat_range`), which may be one address (`/32`, `/128`): truncated
 * to the shorter of its prefix and the rule's (`171.132.50.94/32` → `171.132.50.0/24`), or pseudonymized — a
 * single address as the address itself, so that it matches the client address's pseudonym. Text that is no
 * block is treated as an address that does not parse: dropped when truncating, pseudonymized whole otherwise.
 */
function block(text: string, slash: number, rule: AddressRule): string | null {
  const address = text.slice(0, slash);
  const length = text.slice(slash + 1);
  const family = isIP(address);
  const bits = /^\d{1,3}$/.test(length) ? Number(length) : Number.NaN;
  const max = family === 4 ? 32 : 128;
  if (family === 0 || !(bits <= max)) {
    return rule.mode === 'truncate' ? null : (rule.pseudonymizer as Pseudonymizer).of('ip', text);
  }
  if (rule.mode === 'pseudonymize') {
    if (bits === max) return anonymize(address, rule);
    return (rule.pseudonymizer as Pseudonymizer).of('ip', `${ipaddr.parse(address).toNormalizedString()}/${bits}`);
  }
  if (family === 4) {
    const prefix = Math.min(bits, rule.ipv4Prefix);
    return `${truncateIPv4(address, prefix)}/${prefix}`;
  }
  const prefix = Math.min(bits, rule.ipv6Prefix);
  const bytes = ipaddr.parse(address).toByteArray();
  mask(bytes, prefix);
  return `${ipaddr.fromByteArray(bytes).toString()}/${prefix}`;
}

const ZEROS = ['', '.0.0.0', '.0.0', '.0'];

// IPv4 by hand: the common case, and five times faster than through ipaddr.js (bench/anonymize.ts).
function truncateIPv4(text: string, prefix: number): string {
  // isIPv4 admits no leading zeros, so whole octets kept are the text's own: `203.0.113.77` /24 → `203.0.113` + `.0`.
  if (prefix % 8 === 0) {
    const keep = prefix / 8;
    if (keep === 4) return text;
    if (keep === 0) return '0.0.0.0';
    let end = -1;
    for (let i = 0; i < keep; i++) end = text.indexOf('.', end + 1);
    return text.slice(0, end) + ZEROS[keep];
  }
  const bytes = text.split('.').map(Number);
  mask(bytes, prefix);
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/** Zeroes the bits of `bytes` after the first `prefix`. */
function mask(bytes: number[], prefix: number): void {
  for (let i = 0; i < bytes.length; i++) {
    const keep = prefix - i * 8;
    if (keep >= 8) continue;
    bytes[i] = keep <= 0 ? 0 : (bytes[i] as number) & ((0xff << (8 - keep)) & 0xff);
  }
}
