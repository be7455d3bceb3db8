/**
 * AbuseIPDB lookups against a local HTTP server answering in the shape of `/api/v2/check`, with the real Redis
 * (127.0.0.1:6379) for the cache and the daily quota: scores on records, the cache, private addresses never
 * sent, the quota, a 429, and the circuit breaker opening and closing again.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Transform } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import { OPEN_RECORD_SCHEMA } from '../../../engine/record-schema.ts';
import { createAjv, createRecordAjv } from '../../../engine/schema/ajv.ts';
import { recordingContext } from '../../../test/support/context.ts';
import definition from './index.ts';
import type { ThreatIntelOptions } from './schema.ts';
import { REDIS_URL } from '../../../test/support/redis-url.ts';

const prefix = `etl-test-threat-${process.pid}-${Date.now()}:`;
const redis = new Redis(REDIS_URL, { keyPrefix: prefix, lazyConnect: true });

/**
 * What the server answers: a score per address, or a failure mode. The addresses are public ones (documentation
 * ranges are reserved, and never sent); they reach only this server.
 */
const scores = new Map<string, number>([
  ['45.155.205.233', 100],
  ['8.8.8.8', 0],
  ['1.1.1.1', 40],
  ['2a06:e480::66', 90],
]);
let mode: 'ok' | 'fail' | 'quota' | 'slow' = 'ok';
const asked: string[] = [];

const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  if (url.pathname !== '/api/v2/check') return send(404, { errors: [{ detail: 'not found', status: 404 }] });
  if (req.headers.key !== 'test-key') return send(401, { errors: [{ detail: 'Authentication failed.', status: 401 }] });
  const address = url.searchParams.get('ipAddress') ?? '';
  asked.push(address);
  if (mode === 'fail') return send(500, { errors: [{ detail: 'Internal error', status: 500 }] });
  if (mode === 'quota') {
    return send(
      429,
      { errors: [{ detail: 'Daily rate limit of 1000 requests exceeded.', status: 429 }] },
      {
        'retry-after': '3600',
      },
    );
  }
  if (mode === 'slow') return; // never answers: the call times out
  const score = scores.get(address) ?? 0;
  send(200, {
    data: {
      ipAddress: address,
      isPublic: true,
      ipVersion: address.includes(':') ? 6 : 4,
      isWhitelisted: false,
      abuseConfidenceScore: score,
      countryCode: 'NL',
      usageType: 'Data Center/Web Hosting/Transit',
      isp: 'Example Hosting',
      domain: 'example.net',
      hostnames: [],
      isTor: false,
      totalReports: score === 0 ? 0 : score / 10,
      numDistinctUsers: 1,
      lastReportedAt: score === 0 ? null : '2026-12-04T12:00:00+00:00',
    },
  });
});
let base = '';

beforeAll(async () => {
  await redis.connect();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v2/check`;
});
afterAll(async () => {
  server.closeAllConnections();
  server.close();
  const raw = new Redis(REDIS_URL);
  const keys = await raw.keys(`${prefix}*`);
  if (keys.length > 0) await raw.del(...keys);
  raw.disconnect();
  redis.disconnect();
});

const open: Transform[] = [];
afterEach(async () => {
  for (const t of open.splice(0)) await t.close?.();
  mode = 'ok';
  asked.length = 0;
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys.map((k) => k.slice(prefix.length)));
});

function options(abuseipdb: Record<string, unknown>): ThreatIntelOptions {
  const copy = {
    signatures: { builtin: false },
    lists: [],
    abuseipdb: { api_key: 'test-key', cache: 'cache', url: base, ...abuseipdb },
  };
  const validate = createAjv().compile(definition.schema);
  if (!validate(copy)) throw new Error(JSON.stringify(validate.errors));
  return copy as unknown as ThreatIntelOptions;
}

async function started(abuseipdb: Record<string, unknown> = {}) {
  const ctx = recordingContext({
    resource: <T>(name: string): T => {
      if (name !== 'cache') throw new Error(`no resource ${name}`);
      return redis as T;
    },
  });
  const opts = options(abuseipdb);
  const transform = await definition.create(opts, ctx);
  open.push(transform);
  await transform.open?.();
  return { transform, ctx, opts };
}

const from = (...ips: string[]): EtlRecord[] => ips.map((client_ip) => ({ client_ip, path: '/' }));
const scoresOf = (records: EtlRecord[] | undefined) =>
  records?.map((r) => [r.client_ip, r.threat_score, r.threat_reports, r.threat_matched]);

describe('threat_intel with AbuseIPDB', () => {
  it('adds scores, matches at min_score, sends no private address, and answers again from the cache', async () => {
    const { transform, ctx, opts } = await started({ min_score: 75 });
    const batch = from(
      '45.155.205.233',
      '8.8.8.8',
      '10.0.0.1',
      '2a06:e480::66',
      'host.example',
      '45.155.205.233',
      '8.8',
    );
    const out = await transform.process(batch);
    expect(scoresOf(out.default)).toEqual([
      ['45.155.205.233', 100, 10, true],
      ['8.8.8.8', 0, 0, false],
      ['10.0.0.1', null, null, false],
      ['2a06:e480::66', 90, 9, true],
      ['host.example', null, null, false],
      ['45.155.205.233', 100, 10, true],
      ['8.8', null, null, false],
    ]);
    expect(out.threats?.map((r) => r.client_ip)).toEqual(['45.155.205.233', '2a06:e480::66', '45.155.205.233']);
    expect(asked.sort()).toEqual(['2a06:e480::66', '45.155.205.233', '8.8.8.8']);
    // What is declared is what comes out.
    const declared = definition.outputSchemas?.(opts, OPEN_RECORD_SCHEMA).default;
    const validate = createRecordAjv().compile(declared ?? {});
    for (const record of out.default ?? []) expect(validate(record), JSON.stringify(validate.errors)).toBe(true);

    asked.length = 0;
    const again = await transform.process(from('8.8.8.8', '45.155.205.233'));
    expect(scoresOf(again.default)).toEqual([
      ['8.8.8.8', 0, 0, false],
      ['45.155.205.233', 100, 10, true],
    ]);
    expect(asked).toEqual([]);
    expect(ctx.values.get('threat_intel_abuseipdb_lookups_total{outcome=cached}')).toBe(2);
    expect(ctx.values.get('threat_intel_abuseipdb_lookups_total{outcome=called}')).toBe(3);
  });

  it('stops calling once the daily quota is spent, with null scores and a warning', async () => {
    const { transform, ctx } = await started({ requests_per_day: 2, concurrency: 1 });
    const out = await transform.process(from('45.155.205.233', '8.8.8.8', '1.1.1.1'));
    expect(scoresOf(out.default)).toEqual([
      ['45.155.205.233', 100, 10, true],
      ['8.8.8.8', 0, 0, false],
      ['1.1.1.1', null, null, false],
    ]);
    expect(asked).toEqual(['45.155.205.233', '8.8.8.8']);
    expect((await ctx.logged('daily quota of 2 calls is spent')).level).toBe('warn');
    // The count is in Redis: another stage with the same key (a rerun, another pipeline) finds it spent.
    const other = await started({ requests_per_day: 2 });
    expect(scoresOf((await other.transform.process(from('1.1.1.1'))).default)).toEqual([
      ['1.1.1.1', null, null, false],
    ]);
    expect(asked).toEqual(['45.155.205.233', '8.8.8.8']);
  });

  it('pauses on a 429 for as long as Retry-After says', async () => {
    const { transform, ctx } = await started({ concurrency: 1 });
    mode = 'quota';
    const out = await transform.process(from('45.155.205.233', '8.8.8.8'));
    expect(scoresOf(out.default)).toEqual([
      ['45.155.205.233', null, null, false],
      ['8.8.8.8', null, null, false],
    ]);
    expect(asked).toEqual(['45.155.205.233']);
    expect((await ctx.logged('answered 429')).message).toMatch(/no call until/);
    mode = 'ok';
    await transform.process(from('8.8.8.8'));
    expect(asked).toEqual(['45.155.205.233']);
  });

  it('opens the circuit after failures, calls nothing while open, and closes it when a trial call succeeds', async () => {
    const { transform, ctx } = await started({
      concurrency: 1,
      timeout_ms: 200,
      breaker: { failure_percent: 50, min_calls: 3, reset_seconds: 0.3 },
    });
    mode = 'fail';
    const out = await transform.process(
      from('45.155.205.233', '8.8.8.8', '1.1.1.1', '2a06:e480::66', '45.155.205.234'),
    );
    expect(out.default?.every((r) => r.threat_score === null)).toBe(true);
    expect((await ctx.logged('AbuseIPDB circuit open')).level).toBe('warn');
    const callsWhenOpen = asked.length;
    expect(callsWhenOpen).toBe(3);
    await transform.process(from('45.155.205.233'));
    expect(asked.length).toBe(callsWhenOpen);

    await ctx.logged('circuit half-open');
    mode = 'ok';
    const after = await transform.process(from('45.155.205.233'));
    expect(scoresOf(after.default)).toEqual([['45.155.205.233', 100, 10, true]]);
    await ctx.logged('AbuseIPDB circuit closed');
  });

  it('counts a call that takes too long as failed, and goes on', async () => {
    const { transform, ctx } = await started({ timeout_ms: 100, concurrency: 1 });
    mode = 'slow';
    const out = await transform.process(from('45.155.205.233'));
    expect(scoresOf(out.default)).toEqual([['45.155.205.233', null, null, false]]);
    expect(ctx.values.get('threat_intel_abuseipdb_lookups_total{outcome=failed}')).toBe(1);
  });
});

describe('threat_intel AbuseIPDB options', () => {
  it('names the redis resource it uses, and declares the score fields only when on', () => {
    const on = options({});
    expect(definition.uses?.(on)).toEqual([{ path: ['abuseipdb', 'cache'], name: 'cache', type: 'redis' }]);
    const fields = Object.keys(definition.outputSchemas?.(on, OPEN_RECORD_SCHEMA).default?.properties ?? {});
    expect(fields).toEqual(['threat_matched', 'threat_score', 'threat_reports']);
    const { abuseipdb: _, ...off } = on;
    expect(definition.uses?.(off as ThreatIntelOptions)).toEqual([]);
  });
});
