/**
 * Use case 2, threat detection, end to end: `etl apply pipelines/threats.yaml` over two hours of ordinary traffic
 * into which four attacks are injected — a brute force on /wp-login.php, a path-traversal scan, an SQL-injection
 * probe and ordinary-looking requests from a listed block — into the PostgreSQL server. Exactly those raise alerts,
 * one per attack window, each saying how many requests it covers; no ordinary request is a threat; the rate
 * anomalies fall in attack minutes only.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { prng } from '../support/random.ts';
import { clfTime, readmeQueries, runUseCase } from './support.ts';

const START = Date.parse('2026-12-01T10:00:00Z');
const AGENT =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
const PATHS = ['/', '/products', '/products/42', '/cart', '/about', '/blog/post-1', '/static/app.js', '/img/logo.png'];

interface Hit {
  readonly ip: string;
  readonly time: number;
  readonly method: string;
  readonly target: string;
  readonly status: number;
  readonly agent: string;
}

interface Attack {
  readonly name: string;
  readonly ip: string;
  readonly from: number;
  readonly hits: Hit[];
}

const at = (minute: number, second = 0) => START + minute * 60_000 + second * 1000;

function attacks(): Attack[] {
  const random = prng(7);
  const spread = (
    ip: string,
    from: number,
    seconds: number,
    n: number,
    make: (i: number) => Omit<Hit, 'ip' | 'time'>,
  ) => Array.from({ length: n }, (_, i) => ({ ip, time: from + Math.floor((i / n) * seconds * 1000), ...make(i) }));
  return [
    {
      name: 'brute force',
      ip: '45.9.148.10',
      from: at(20),
      hits: spread('45.9.148.10', at(20), 150, 300, () => ({
        method: 'POST',
        target: '/wp-login.php',
        status: 200,
        agent: AGENT,
      })),
    },
    {
      name: 'path traversal scan',
      ip: '89.248.165.5',
      from: at(41),
      hits: spread('89.248.165.5', at(41), 60, 120, (i) => ({
        method: 'GET',
        target: `/static/${'..%2f'.repeat(2 + (i % 5))}etc/passwd`,
        status: 404,
        agent: 'curl/8.5.0',
      })),
    },
    {
      name: 'sql injection probe',
      ip: '141.98.11.7',
      from: at(65, 10),
      hits: spread('141.98.11.7', at(65, 10), 30, 10, (i) => ({
        method: 'GET',
        target:
          i % 2
            ? `/products?id=${i}%27%20OR%20%271%27%3D%271`
            : `/products?id=${i}%20UNION%20SELECT%20password%20FROM%20users`,
        status: 500,
        agent: AGENT,
      })),
    },
    {
      name: 'listed block',
      ip: '203.0.113.50',
      from: at(90),
      hits: spread('203.0.113.50', at(90), 180, 30, () => ({
        method: 'GET',
        target: PATHS[Math.floor(random() * PATHS.length)] as string,
        status: 200,
        agent: AGENT,
      })),
    },
  ];
}

/** Two hours of ordinary browsing from 300 addresses: steady rates, nothing a signature or a list knows. */
function ordinary(): Hit[] {
  const random = prng(11);
  const hits: Hit[] = [];
  for (let time = START; time < START + 2 * 3_600_000; time += 200 + Math.floor(random() * 400)) {
    const post = random() < 0.05;
    hits.push({
      ip: `81.2.${60 + Math.floor(random() * 10)}.${1 + Math.floor(random() * 30)}`,
      time,
      method: post ? 'POST' : 'GET',
      target: post ? '/cart' : (PATHS[Math.floor(random() * PATHS.length)] as string),
      status: random() < 0.03 ? 404 : 200,
      agent: AGENT,
    });
  }
  return hits;
}

function line(hit: Hit): string {
  const stamp = clfTime(hit.time);
  return `${hit.ip} - - [${stamp}] "${hit.method} ${hit.target} HTTP/1.1" ${hit.status} 512 "-" "${hit.agent}"`;
}

const ATTACKS = attacks();
const ORDINARY = ordinary();
const use = runUseCase('threats', () =>
  [...ORDINARY, ...ATTACKS.flatMap((a) => a.hits)].sort((a, b) => a.time - b.time).map(line),
);

const WINDOW = 300_000;
const windowOf = (time: number) => new Date(Math.floor(time / WINDOW) * WINDOW).toISOString();

describe('pipelines/threats.yaml', () => {
  it('raises exactly one alert per attack window, with the requests it covers, and none for ordinary traffic', async () => {
    const rows = await use.db.query<{ window_start: Date; ip: string; requests: number; lists: string | null }>(
      'SELECT window_start, host(client_ip) AS ip, requests::int, threat_lists AS lists FROM threat_alerts ORDER BY 1',
    );
    expect(
      rows.map((r) => ({ window: r.window_start.toISOString(), ip: r.ip, requests: r.requests, lists: r.lists })),
    ).toEqual(
      ATTACKS.map((a) => ({
        window: windowOf(a.from),
        ip: a.ip,
        requests: a.hits.length,
        lists: a.name === 'listed block' ? 'blocked' : null,
      })),
    );
    // The alert channel got the same alerts, once each.
    const feed = readFileSync(join(use.dataDir, 'alerts', 'threats.jsonl'), 'utf8')
      .trim()
      .split('\n');
    expect(feed.map((l) => JSON.parse(l).client_ip)).toEqual(ATTACKS.map((a) => a.ip));
  });

  it('stores each attacking request in `threats`, named by its rule or list, and no ordinary request', async () => {
    const rows = await use.db.query<{ ip: string; n: number; categories: string[] }>(
      `SELECT host(client_ip) AS ip, count(*)::int AS n,
              array_agg(DISTINCT coalesce(threat_categories, 'list:' || threat_lists)) AS categories
         FROM threats GROUP BY 1 ORDER BY 1`,
    );
    expect(rows).toEqual(
      [
        { ip: '141.98.11.7', n: 10, categories: ['sqli'] },
        { ip: '203.0.113.50', n: 30, categories: ['list:blocked'] },
        { ip: '45.9.148.10', n: 300, categories: ['scanner'] },
        { ip: '89.248.165.5', n: 120, categories: ['traversal'] },
      ].sort((a, b) => (a.ip < b.ip ? -1 : 1)),
    );
    const [all] = await use.db.query<{ n: number }>('SELECT count(*)::int AS n FROM requests');
    expect(all?.n).toBe(ORDINARY.length + ATTACKS.reduce((n, a) => n + a.hits.length, 0));
  });

  it('flags rate anomalies only in attack minutes, and flags the brute force and the scan', async () => {
    const rows = await use.db.query<{ minute: Date; method: string; status_class: string }>(
      'SELECT anomaly_bucket_start AS minute, method, status_class FROM traffic_anomalies ORDER BY 1',
    );
    const attackMinutes = new Set(ATTACKS.flatMap((a) => a.hits.map((h) => Math.floor(h.time / 60_000) * 60_000)));
    for (const r of rows) expect(attackMinutes.has(r.minute.getTime()), r.minute.toISOString()).toBe(true);
    const flagged = new Set(rows.map((r) => `${r.method} ${r.status_class}`));
    expect(flagged).toContain('POST 2xx');
    expect(flagged).toContain('GET 4xx');
  });

  it("runs every query of the README's section", async () => {
    const queries = readmeQueries('Threat detection — `pipelines/threats.yaml`');
    expect(queries.size).toBe(3);
    for (const [title, sql] of queries) expect((await use.db.query(sql)).length, title).toBeGreaterThan(0);
  });
});
