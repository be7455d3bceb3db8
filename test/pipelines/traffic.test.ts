import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { prng } from '../support/random.ts';
import { applyPipeline, clfTime, readmeQueries, runUseCase } from './support.ts';

const PIPELINE = resolve(import.meta.dirname, '../../pipelines/traffic.yaml');
const LINES = 4000;
const START = Date.parse('2026-12-01T00:00:00Z');
const HOUR = 3_600_000;
const GAP = 1800_000;

/** Addresses whose country the bundled database gives (checked once against it, kept as known answers). */
const COUNTRIES: Record<string, string> = {
  '8.8.8.': 'US',
  '81.2.69.': 'GB',
  '185.220.101.': 'DE',
  '133.242.0.': 'JP',
  '200.160.2.': 'BR',
  '193.0.6.': 'NL',
};

interface Agent {
  readonly text: string;
  readonly device: string | null;
  readonly browser: string;
  readonly os: string | null;
  readonly bot: boolean;
}
const AGENTS: Agent[] = [
  {
    text: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
    device: 'desktop',
    browser: 'Chrome',
    os: 'Windows',
    bot: false,
  },
  {
    text: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1',
    device: 'mobile',
    browser: 'Mobile Safari',
    os: 'iOS',
    bot: false,
  },
  {
    text: 'Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0',
    device: 'desktop',
    browser: 'Firefox',
    os: 'Linux',
    bot: false,
  },
  {
    text: 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
    device: null,
    browser: 'Googlebot',
    os: null,
    bot: true,
  },
];
const REFERRERS = Array.from({ length: 14 }, (_, i) => `https://ref${i}.example/page`);

interface Hit {
  readonly ip: string;
  readonly country: string;
  readonly agent: Agent;
  readonly time: number;
  readonly bytes: number;
  readonly referrer: string | null;
}

function generate(): Hit[] {
  const random = prng(2026);
  const prefixes = Object.keys(COUNTRIES);
  const hits: Hit[] = [];
  let time = START;
  for (let i = 0; i < LINES; i++) {
    time += Math.floor(random() * 5000);
    const prefix = prefixes[Math.floor(random() * prefixes.length)] as string;
    const host = 1 + Math.floor(random() * 15);
    // A visitor keeps its agent: the address decides it.
    const agent = AGENTS[(host + prefix.length) % AGENTS.length] as Agent;
    // Skewed, so the top 10 of 14 is decided by counts, not by ties.
    const r = random();
    const referrer = r < 0.2 ? null : (REFERRERS[Math.floor(((r - 0.2) / 0.8) ** 2 * REFERRERS.length)] as string);
    hits.push({
      ip: `${prefix}${host}`,
      country: COUNTRIES[prefix] as string,
      agent,
      time,
      bytes: 100 + Math.floor(random() * 50_000),
      referrer,
    });
  }
  return hits;
}

function line(hit: Hit): string {
  const stamp = clfTime(hit.time);
  return `${hit.ip} - - [${stamp}] "GET /products/${hit.bytes % 97} HTTP/1.1" 200 ${hit.bytes} "${hit.referrer ?? '-'}" "${hit.agent.text}"`;
}

const hourOf = (time: number) => new Date(Math.floor(time / HOUR) * HOUR).toISOString();

/** Groups `hits` by `key` and counts requests, distinct addresses and bytes. */
function rollup(hits: Hit[], key: (hit: Hit) => string) {
  const groups = new Map<string, { requests: number; visitors: Set<string>; bytes: number }>();
  for (const hit of hits) {
    const k = key(hit);
    const g = groups.get(k) ?? { requests: 0, visitors: new Set<string>(), bytes: 0 };
    g.requests++;
    g.visitors.add(hit.ip);
    g.bytes += hit.bytes;
    groups.set(k, g);
  }
  return new Map([...groups].map(([k, g]) => [k, { requests: g.requests, visitors: g.visitors.size, bytes: g.bytes }]));
}

const hits = generate();
const use = runUseCase('traffic', () => hits.map(line));

describe('pipelines/traffic.yaml', () => {
  it('stores every line in the raw table, partitioned by day, located and with its agent read', async () => {
    const [raw] = await use.db.query<{ n: number; bots: number }>(
      'SELECT count(*)::int AS n, count(*) FILTER (WHERE ua_is_bot)::int AS bots FROM traffic_hits',
    );
    expect(raw).toEqual({ n: LINES, bots: hits.filter((h) => h.agent.bot).length });
    const partitions = await use.db.query(
      "SELECT inhrelid::regclass::text AS name FROM pg_inherits WHERE inhparent = 'traffic_hits'::regclass",
    );
    expect(partitions.length).toBeGreaterThan(0);
  });

  it('rolls up requests, unique visitors and bytes by country and hour', async () => {
    const rows = await use.db.query<{
      hour: string;
      country: string;
      requests: number;
      visitors: number;
      bytes: number;
    }>(
      `SELECT window_start AS hour, geo_country_code AS country, requests::int, visitors::int, bytes::bigint::float8 AS bytes
         FROM traffic_by_country_hour`,
    );
    const actual = new Map(rows.map((r) => [`${new Date(r.hour).toISOString()} ${r.country}`, r]));
    const expected = rollup(hits, (h) => `${hourOf(h.time)} ${h.country}`);
    expect(actual.size).toBe(expected.size);
    for (const [key, want] of expected) {
      const got = actual.get(key);
      expect({ key, requests: got?.requests, visitors: got?.visitors, bytes: got?.bytes }).toEqual({ key, ...want });
    }
  });

  it('rolls up by device type, browser and OS', async () => {
    const rows = await use.db.query<{ device: string | null; browser: string; os: string | null; requests: number }>(
      `SELECT ua_device_type AS device, ua_browser AS browser, ua_os AS os, sum(requests)::int AS requests
         FROM traffic_by_device_hour GROUP BY 1, 2, 3`,
    );
    const expected = new Map<string, number>();
    for (const h of hits) {
      const key = `${h.agent.device}|${h.agent.browser}|${h.agent.os}`;
      expected.set(key, (expected.get(key) ?? 0) + 1);
    }
    expect(new Map(rows.map((r) => [`${r.device}|${r.browser}|${r.os}`, r.requests]))).toEqual(expected);
  });

  it('counts visits (30-minute sessions), visitors and the bot share per hour', async () => {
    // Sessions found here: a visitor's hit more than 30 minutes after its previous one starts a new visit.
    const last = new Map<string, { time: number; session: string }>();
    const sessionOf: string[] = [];
    for (const h of hits) {
      const key = `${h.ip}|${h.agent.text}`;
      const prev = last.get(key);
      const session = prev && h.time - prev.time <= GAP ? prev.session : `${key}@${h.time}`;
      last.set(key, { time: h.time, session });
      sessionOf.push(session);
    }
    const expected = new Map<string, { requests: number; visitors: number; visits: number; bots: number }>();
    const visitsPerHour = new Map<string, Set<string>>();
    const visitorsPerHour = new Map<string, Set<string>>();
    hits.forEach((h, i) => {
      const hour = hourOf(h.time);
      const e = expected.get(hour) ?? { requests: 0, visitors: 0, visits: 0, bots: 0 };
      e.requests++;
      if (h.agent.bot) e.bots++;
      expected.set(hour, e);
      visitsPerHour.set(hour, (visitsPerHour.get(hour) ?? new Set()).add(sessionOf[i] as string));
      visitorsPerHour.set(hour, (visitorsPerHour.get(hour) ?? new Set()).add(h.ip));
    });
    for (const [hour, e] of expected) {
      e.visits = visitsPerHour.get(hour)?.size ?? 0;
      e.visitors = visitorsPerHour.get(hour)?.size ?? 0;
    }
    const rows = await use.db.query<{ hour: string; requests: number; visitors: number; visits: number; bots: number }>(
      'SELECT window_start AS hour, requests::int, visitors::int, visits::int, bots::int FROM traffic_hour',
    );
    expect(new Map(rows.map(({ hour, ...r }) => [new Date(hour).toISOString(), r]))).toEqual(expected);
  });

  it('keeps the ten top referrers of each hour with their counts', async () => {
    const rows = await use.db.query<{ hour: string; rank: number; referrer: string | null; requests: number }>(
      'SELECT window_start AS hour, rank::int, referrer, requests::int FROM traffic_top_referrers_hour ORDER BY 1, 2',
    );
    const counts = new Map<string, Map<string | null, number>>();
    for (const h of hits) {
      const perHour = counts.get(hourOf(h.time)) ?? new Map<string | null, number>();
      perHour.set(h.referrer, (perHour.get(h.referrer) ?? 0) + 1);
      counts.set(hourOf(h.time), perHour);
    }
    for (const [hour, perHour] of counts) {
      const got = rows.filter((r) => new Date(r.hour).toISOString() === hour);
      expect(got.map((r) => r.rank)).toEqual([...Array(Math.min(10, perHour.size)).keys()].map((i) => i + 1));
      // Each row holds its referrer's true count, and no referrer left out has more than the tenth.
      for (const r of got) expect(r.requests).toBe(perHour.get(r.referrer));
      const tenth = Math.min(...got.map((r) => r.requests));
      const kept = new Set(got.map((r) => r.referrer));
      for (const [referrer, n] of perHour) if (!kept.has(referrer)) expect(n).toBeLessThanOrEqual(tenth);
    }
  });

  it('writes nothing on a rerun that finds nothing new: the rollups were emitted as they stand', async () => {
    const [before] = await use.db.query<{ n: number }>('SELECT sum(requests)::int AS n FROM traffic_hour');
    const again = await applyPipeline(PIPELINE, use.env);
    expect(again.code, again.stderr).toBe(0);
    for (const sink of ['hits', 'country_hourly', 'device_hourly', 'hourly', 'referrers_hourly']) {
      expect(again.stderr).toMatch(new RegExp(`to ${sink}\\s+0 records written`));
    }
    const [after] = await use.db.query<{ n: number }>('SELECT sum(requests)::int AS n FROM traffic_hour');
    expect(after).toEqual(before);
  });

  it("runs every query of the README's section", async () => {
    const queries = readmeQueries('Web traffic — `pipelines/traffic.yaml`');
    expect(queries.size).toBe(3);
    for (const [title, sql] of queries) expect((await use.db.query(sql)).length, title).toBeGreaterThan(0);
  });
});
