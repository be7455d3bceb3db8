import { describe, expect, it } from 'vitest';
import { prng } from '../support/random.ts';
import { clfTime, readmeQueries, runUseCase } from './support.ts';

const START = Date.parse('2026-12-01T00:00:00Z');
const MINUTE = 60_000;
const HOURS = 4;

interface Endpoint {
  readonly template: string;
  readonly path: (random: () => number) => string;
  /** Typical latency, ms. */
  readonly median: number;
  readonly errorRate: number;
}
const ENDPOINTS: Endpoint[] = [
  { template: '/api/users/:id', path: (r) => `/api/users/${Math.floor(r() * 10_000)}`, median: 40, errorRate: 0.01 },
  {
    template: '/api/orders/:id/items',
    path: (r) => `/api/orders/${Math.floor(r() * 10_000)}/items`,
    median: 120,
    errorRate: 0.03,
  },
  { template: '/search', path: () => '/search', median: 200, errorRate: 0.02 },
  { template: '/health', path: () => '/health', median: 2, errorRate: 0 },
];
/** The endpoint made slower in the last hour. */
const REGRESSED = '/search';

interface Hit {
  readonly endpoint: Endpoint;
  readonly path: string;
  readonly time: number;
  readonly ms: number;
  readonly status: number;
}

function generate(): Hit[] {
  const random = prng(33);
  const hits: Hit[] = [];
  for (let time = START; time < START + HOURS * 3_600_000; time += 250 + Math.floor(random() * 1000)) {
    const endpoint = ENDPOINTS[Math.floor(random() * ENDPOINTS.length)] as Endpoint;
    const slower = endpoint.template === REGRESSED && time >= START + (HOURS - 1) * 3_600_000 ? 3 : 1;
    // Log-normal-ish: a long tail, so p99 is far from p50.
    const ms = Math.max(1, Math.round(endpoint.median * slower * Math.exp((random() - 0.5) * 2 + random() ** 8 * 3)));
    const status = random() < endpoint.errorRate ? 503 : random() < 0.05 ? 404 : 200;
    hits.push({ endpoint, path: endpoint.path(random), time, ms, status });
  }
  return hits;
}

function line(hit: Hit): string {
  const stamp = clfTime(hit.time);
  return `10.1.2.3 - - [${stamp}] "GET ${hit.path} HTTP/1.1" ${hit.status} 512 "-" "curl/8.5.0" ${(hit.ms / 1000).toFixed(3)}`;
}

/** The value of rank q × (n − 1), rounded down: what the aggregate documents. */
function quantile(sorted: number[], q: number): number {
  return sorted[Math.floor(q * (sorted.length - 1))] as number;
}

const QUERIES = readmeQueries('Endpoint performance — `pipelines/performance.yaml`');
const readmeQuery = (title: string): string => {
  const sql = [...QUERIES].find(([t]) => t.startsWith(title))?.[1];
  if (sql === undefined) throw new Error(`README has no query titled "-- ${title}"`);
  return sql;
};

const hits = generate();
const use = runUseCase('performance', () => hits.map(line));

describe('pipelines/performance.yaml', () => {
  it('gives each endpoint template per minute its requests, errors and latency percentiles', async () => {
    const groups = new Map<string, Hit[]>();
    for (const h of hits) {
      const key = `${new Date(Math.floor(h.time / MINUTE) * MINUTE).toISOString()} ${h.endpoint.template}`;
      groups.set(key, [...(groups.get(key) ?? []), h]);
    }
    const rows = await use.db.query<{
      minute: Date;
      endpoint: string;
      requests: number;
      errors_5xx: number;
      errors_4xx: number;
      p50: number;
      p95: number;
      p99: number;
      max: number;
    }>(
      `SELECT window_start AS minute, endpoint, requests::int, errors_5xx::int, errors_4xx::int, latency_p50_ms AS p50,
              latency_p95_ms AS p95, latency_p99_ms AS p99, latency_max_ms::float8 AS max FROM endpoint_minute`,
    );
    expect(rows.length).toBe(groups.size);
    let sketched = 0;
    for (const row of rows) {
      const group = groups.get(`${row.minute.toISOString()} ${row.endpoint}`);
      expect(group, `${row.minute.toISOString()} ${row.endpoint}`).toBeDefined();
      const g = group as Hit[];
      expect([row.requests, row.errors_5xx, row.errors_4xx]).toEqual([
        g.length,
        g.filter((h) => h.status >= 500).length,
        g.filter((h) => h.status >= 400 && h.status < 500).length,
      ]);
      const sorted = g.map((h) => h.ms).sort((a, b) => a - b);
      const tolerance = g.length <= 64 ? 1e-9 : 0.01;
      if (g.length > 64) sketched++;
      for (const [q, got] of [
        [0.5, row.p50],
        [0.95, row.p95],
        [0.99, row.p99],
      ] as const) {
        const exact = quantile(sorted, q);
        expect(
          Math.abs(got - exact) / exact,
          `p${q * 100} of ${row.endpoint} at ${row.minute.toISOString()}`,
        ).toBeLessThanOrEqual(tolerance);
      }
      expect(row.max).toBe(sorted.at(-1));
    }
    expect(sketched).toBe(0); // a minute holds at most ~60 requests per endpoint here: exact throughout
  });

  it('gives per hour percentiles within 1% (sketched: hundreds of values per group)', async () => {
    const rows = await use.db.query<{ hour: Date; endpoint: string; requests: number; p95: number; p99: number }>(
      'SELECT window_start AS hour, endpoint, requests::int, latency_p95_ms AS p95, latency_p99_ms AS p99 FROM endpoint_hour',
    );
    expect(rows.length).toBe(HOURS * ENDPOINTS.length);
    for (const row of rows) {
      const g = hits.filter(
        (h) =>
          h.endpoint.template === row.endpoint && Math.floor(h.time / 3_600_000) * 3_600_000 === row.hour.getTime(),
      );
      expect(row.requests).toBe(g.length);
      expect(g.length).toBeGreaterThan(64);
      const sorted = g.map((h) => h.ms).sort((a, b) => a - b);
      expect(Math.abs(row.p95 - quantile(sorted, 0.95)) / quantile(sorted, 0.95)).toBeLessThanOrEqual(0.01);
      expect(Math.abs(row.p99 - quantile(sorted, 0.99)) / quantile(sorted, 0.99)).toBeLessThanOrEqual(0.01);
    }
  });

  it("finds the endpoint whose p95 got worse than its own baseline, and no other (the README's query)", async () => {
    const rows = await use.db.query<{ endpoint: string }>(readmeQuery('endpoints slower than their baseline'));
    expect(rows.map((r) => r.endpoint)).toEqual([REGRESSED]);
  });

  it("ranks the slowest endpoints by p95 (the README's query)", async () => {
    const rows = await use.db.query<{ endpoint: string }>(readmeQuery('slowest endpoints over the last day'));
    expect(rows[0]?.endpoint).toBe('/search');
    expect(rows.at(-1)?.endpoint).toBe('/health');
  });

  it("runs every query of the README's section", async () => {
    expect(QUERIES.size).toBe(3);
    for (const [title, sql] of QUERIES) {
      const rows = await use.db.query(sql.replace("'/products/:id'", "'/api/users/:id'"));
      expect(rows.length, title).toBeGreaterThan(0);
    }
  });
});
