/**
 * Forwarding chains: logs written behind proxies carry the client's address in a list
 * (`203.0.113.7, 198.51.100.2, 192.0.2.10`), either in place of the client address or as an
 * X-Forwarded-For field. Each proxy appends the address it received the request from, so the list reads
 * client first, nearest proxy last, and only its right end is trustworthy: the client is the rightmost
 * address that is not one of our own proxies (nginx's `real_ip_recursive`, Go's and Express's rule).
 */
import { BlockList, isIP } from 'node:net';
import { EtlError } from '../../../engine/errors.ts';
import type { AccessRecord } from '../../shared/log-records.ts';

export class TrustedProxies {
  private readonly list = new BlockList();
  readonly empty: boolean;

  /** `cidrs`: addresses or CIDR blocks, IPv4 or IPv6 (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.1`). */
  constructor(cidrs: readonly string[]) {
    for (const cidr of cidrs) {
      const parsed = parseCidr(cidr);
      if (parsed === undefined) throw new EtlError('ETL_CFG_INVALID', `\`${cidr}\` is not an address or CIDR block`);
      this.list.addSubnet(parsed.address, parsed.prefix, parsed.family);
    }
    this.empty = cidrs.length === 0;
  }

  has(address: string): boolean {
    const family = isIP(address);
    if (family === 0) return false;
    return this.list.check(address, family === 4 ? 'ipv4' : 'ipv6');
  }

  /** The client of a chain: the rightmost address not trusted, else (all trusted) the leftmost. */
  client(chain: readonly string[]): string | null {
    for (let i = chain.length - 1; i >= 0; i--) {
      const address = chain[i] as string;
      if (!this.has(address)) return address;
    }
    return chain[0] ?? null;
  }
}

/** `10.0.0.0/8` → address, prefix, family; a bare address is a /32 or /128. Undefined when invalid. */
export function parseCidr(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const family = isIP(address);
  if (family === 0) return undefined;
  const max = family === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const digits = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(digits)) return undefined;
    prefix = Number(digits);
    if (prefix > max) return undefined;
  }
  return { address, prefix, family: family === 4 ? 'ipv4' : 'ipv6' };
}

/**
 * The items of an X-Forwarded-For value (`a, b,c`), without blanks; null for `-`, an empty value or an
 * item that cannot be an address (a space inside, a quote).
 */
export function splitForwarded(text: string): string[] | null {
  const items: string[] = [];
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (item === '' || item === '-') continue;
    if (/[\s"]/.test(item)) return null;
    items.push(item);
  }
  return items.length === 0 ? null : items;
}

/**
 * With trusted proxies: the chain is X-Forwarded-For (`extra.http_x_forwarded_for`) followed by the
 * address that connected; client_ip becomes its client and forwarded_for keeps it.
 */
export function resolveForwarded(rec: AccessRecord, trusted: TrustedProxies): void {
  if (rec.forwarded_for !== null) return;
  const header = (rec.extra as Record<string, unknown>).http_x_forwarded_for;
  if (typeof header !== 'string') return;
  const items = splitForwarded(header);
  if (items === null) return;
  if (rec.client_ip !== null) items.push(rec.client_ip);
  rec.forwarded_for = items;
  rec.client_ip = trusted.client(items);
}
