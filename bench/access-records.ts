/** Access records as `parse` makes them, generated for the PostgreSQL benchmarks. */
import type { EtlRecord } from '../engine/record.ts';

const PATHS = ['/', '/index.html', '/api/v1/items', '/static/app.js', '/login', '/search'];
const AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36',
  'curl/8.5.0',
  'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
];
const STATUSES = [200, 200, 200, 304, 404, 500, 301];

/**
 * Access records as `parse` makes them, one batch at a time (never all in memory), 10 ms apart; with
 * `wholeSeconds`, times to the second as access logs write them (100 records a second).
 */
export function makeBatch(start: number, count: number, baseMs: number, wholeSeconds = false): EtlRecord[] {
  const out: EtlRecord[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const n = start + i;
    out[i] = {
      client_ip:
        n % 10 === 0 ? `2001:db8::${(n & 0xffff).toString(16)}` : `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
      ident: null,
      user: null,
      timestamp: new Date(wholeSeconds ? Math.floor((baseMs + n * 10) / 1000) * 1000 : baseMs + n * 10).toISOString(),
      method: n % 9 === 0 ? 'POST' : 'GET',
      path: `${PATHS[n % PATHS.length]}`,
      query: n % 3 === 0 ? `q=${n}` : null,
      protocol: 'HTTP/1.1',
      status: STATUSES[n % STATUSES.length],
      bytes: (n * 37) % 50_000,
      referrer: n % 4 === 0 ? 'https://example.com/' : null,
      user_agent: AGENTS[n % AGENTS.length],
      request_time_ms: (n % 1000) / 10,
      vhost: 'example.com',
      port: 443,
    };
  }
  return out;
}
