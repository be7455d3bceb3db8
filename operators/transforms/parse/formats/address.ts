/**
 * The client-address position of `%h %l %u %t` / `$remote_addr - $remote_user [$time_local]` formats
 * when it holds more than one address, as servers behind proxies and shared hosts write it:
 *   203.0.113.7, 198.51.100.2, 192.0.2.10 - - [...]             $proxy_add_x_forwarded_for (the chain)
 *   "203.0.113.7, 198.51.100.2" 192.0.2.10 - - [...]            "$http_x_forwarded_for" $remote_addr
 *   203.0.113.7, 198.51.100.2 192.0.2.10 - - [...]              $http_x_forwarded_for $remote_addr
 *   example.com 203.0.113.7, 192.0.2.10 - - [...]               $host first, then any of the above
 *   example.com:443 192.0.2.10 - - [...]                        Debian's vhost_combined (%v:%p)
 * The segment is split into groups (a quoted list, or bare items joined by `, `); a first group that is
 * a single bare item followed by more is the virtual host. What remains is the forwarding chain (at most
 * two groups: the forwarded list and the connecting address), resolved with `trusted_proxies`.
 */
import type { TrustedProxies } from '../forwarded.ts';
import type { AccessRecord } from '../../../shared/log-records.ts';
import { intValue } from './numbers.ts';

interface Group {
  readonly items: string[];
  /** A quoted list, or bare items joined by commas: never a host name. */
  readonly list: boolean;
}

/** Splits `line[s, e)` into groups; undefined when a quote is not closed or a group is malformed. */
function groups(line: string, s: number, e: number): Group[] | undefined {
  const out: Group[] = [];
  let i = s;
  while (i < e) {
    const c = line.charCodeAt(i);
    if (c === 32) {
      i++;
      continue;
    }
    if (c === 34 /* " */) {
      const q = line.indexOf('"', i + 1);
      if (q < 0 || q >= e) return undefined;
      const items: string[] = [];
      for (const raw of line.slice(i + 1, q).split(',')) {
        const item = raw.trim();
        if (item !== '' && item !== '-') items.push(item);
      }
      out.push({ items, list: true });
      i = q + 1;
      if (i < e && line.charCodeAt(i) !== 32) return undefined;
      continue;
    }
    const items: string[] = [];
    let list = false;
    for (;;) {
      let j = line.indexOf(' ', i);
      if (j < 0 || j > e) j = e;
      for (const item of line.slice(i, j).split(',')) {
        if (item.indexOf('"') >= 0) return undefined;
        if (item !== '') items.push(item);
      }
      const more = line.charCodeAt(j - 1) === 44; /* , */
      i = j;
      if (!more || i >= e) break;
      list = true;
      i++;
    }
    out.push({ items, list: list || items.length > 1 });
  }
  return out;
}

/** `host`, `host:port`, `[v6]:port`; a bare IPv6 address keeps its colons. */
function applyHost(rec: AccessRecord, host: string): boolean {
  let name = host;
  let port = -1;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf(']');
    if (close < 0) return false;
    name = host.slice(1, close);
    if (close + 1 < host.length) {
      if (host.charCodeAt(close + 1) !== 58) return false;
      port = intValue(host, close + 2, host.length);
      if (port < 0) return false;
    }
  } else {
    const colon = host.indexOf(':');
    if (colon >= 0 && colon === host.lastIndexOf(':')) {
      port = intValue(host, colon + 1, host.length);
      if (port < 0) return false;
      name = host.slice(0, colon);
    }
  }
  if (port > 65535) return false;
  rec.vhost = name;
  if (port >= 0) rec.port = port;
  return true;
}

/**
 * Sets client_ip (and vhost, port and forwarded_for when the segment carries them) from `line[s, e)`.
 * `hostFirst`: the address field opens the format, so a leading host name is the virtual host.
 */
export function applyAddressSegment(
  rec: AccessRecord,
  line: string,
  s: number,
  e: number,
  hostFirst: boolean,
  trusted: TrustedProxies,
): boolean {
  const found = groups(line, s, e);
  if (found === undefined || found.length === 0) return false;
  let first = 0;
  const head = found[0] as Group;
  if (hostFirst && found.length >= 2 && !head.list && head.items.length === 1 && head.items[0] !== '-') {
    if (!applyHost(rec, head.items[0] as string)) return false;
    first = 1;
  }
  const rest = found.length - first;
  if (rest > 2) return false;
  const chain: string[] = [];
  for (let g = first; g < found.length; g++) {
    for (const item of (found[g] as Group).items) {
      if (item === '-' && rest === 2 && g === first) continue; // `$http_x_forwarded_for $remote_addr` with no header
      chain.push(item.charCodeAt(0) === 91 && item.endsWith(']') ? item.slice(1, -1) : item);
    }
  }
  if (chain.length === 1 && chain[0] === '-') {
    rec.client_ip = null;
    return true;
  }
  rec.client_ip = trusted.client(chain);
  rec.forwarded_for = chain.length >= 2 ? chain : null;
  return true;
}
