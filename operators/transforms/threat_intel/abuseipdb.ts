/**
 * AbuseIPDB lookups (`GET /api/v2/check`), spent sparingly: answers are cached in Redis (one MGET a batch),
 * calls are counted against a daily quota in Redis (rate-limiter-flexible, so every stage and process using the
 * same key shares it), and a circuit breaker (opossum) stops calling a service that keeps failing. An address
 * that cannot be looked up now (quota spent, circuit open, call failed) gets no answer, not an error: the
 * records go on with a null score, and the address is tried again in a later batch.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import ipaddr from 'ipaddr.js';
import CircuitBreaker from 'opossum';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Logger, OperatorMetrics } from '../../../engine/operator.ts';
import { addressBytes } from './address.ts';
import type { ThreatIntelOptions } from './schema.ts';

export type AbuseIpdbOptions = NonNullable<ThreatIntelOptions['abuseipdb']>;

export interface AbuseAnswer {
  /** `abuseConfidenceScore`, 0–100. */
  readonly score: number;
  /** `totalReports` within `max_age_days`. */
  readonly reports: number;
}

/** The service said the quota is spent (HTTP 429): not a failure of the service. */
class QuotaSpent extends Error {
  readonly retryAfterMs: number;
  constructor(retryAfterMs: number) {
    super(`AbuseIPDB quota spent; retry after ${Math.round(retryAfterMs / 1000)} s`);
    this.retryAfterMs = retryAfterMs;
  }
}

const CACHE_PREFIX = 'threat_intel:abuseipdb:check:';

/**
 * Whether AbuseIPDB can know anything of the address: only public unicast addresses are sent, written as
 * `addressBytes` reads them (not `10.1` nor `0x7f.1`, which ipaddr.js would take).
 */
export function isPublic(address: string): boolean {
  if (addressBytes(address) === undefined) return false;
  try {
    const parsed = ipaddr.process(address);
    return parsed.range() === 'unicast';
  } catch {
    return false;
  }
}

export class AbuseIpdb {
  private readonly options: AbuseIpdbOptions;
  private readonly redis: Redis;
  private readonly logger: Logger;
  private readonly quota: RateLimiterRedis;
  private readonly quotaKey: string;
  readonly breaker: CircuitBreaker<[string], AbuseAnswer>;
  /** No call before this time (epoch ms): the quota is spent. */
  private pausedUntil = 0;
  private readonly counts: Record<'cached' | 'called' | 'failed' | 'skipped', { inc(value?: number): void }>;

  constructor(options: AbuseIpdbOptions, redis: Redis, logger: Logger, metrics: OperatorMetrics, where: string) {
    this.options = options;
    this.redis = redis;
    this.logger = logger;
    // The quota belongs to the API key: its count is keyed by a digest of it, never the key itself.
    this.quotaKey = createHash('sha256').update(options.api_key).digest('hex').slice(0, 16);
    this.quota = new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: 'threat_intel:abuseipdb:quota',
      points: options.requests_per_day,
      duration: 86400,
    });
    const help = 'AbuseIPDB lookups by outcome: from the cache, called, failed, skipped (quota spent or circuit open)';
    this.counts = {
      cached: metrics.counter('threat_intel_abuseipdb_lookups_total', help, { outcome: 'cached' }),
      called: metrics.counter('threat_intel_abuseipdb_lookups_total', help, { outcome: 'called' }),
      failed: metrics.counter('threat_intel_abuseipdb_lookups_total', help, { outcome: 'failed' }),
      skipped: metrics.counter('threat_intel_abuseipdb_lookups_total', help, { outcome: 'skipped' }),
    };
    const { breaker } = options;
    this.breaker = new CircuitBreaker((address: string) => this.call(address), {
      // The call's own AbortSignal times it out; opossum's timer would leave the request running.
      timeout: false,
      errorThresholdPercentage: breaker.failure_percent,
      volumeThreshold: breaker.min_calls,
      resetTimeout: breaker.reset_seconds * 1000,
      rollingCountTimeout: 10_000,
      // A spent quota is the plan's limit, not a failing service.
      errorFilter: (error: unknown) => error instanceof QuotaSpent,
    });
    this.breaker.on('open', () =>
      logger.warn(
        `${where}: AbuseIPDB circuit open: too many failed calls; no call for ${breaker.reset_seconds} s, scores are null meanwhile`,
      ),
    );
    this.breaker.on('halfOpen', () => logger.info(`${where}: AbuseIPDB circuit half-open: trying one call`));
    this.breaker.on('close', () => logger.info(`${where}: AbuseIPDB circuit closed: calls resume`));
  }

  /** Answers for the addresses (public unicast, distinct), from the cache or the service; missing: no answer now. */
  async lookUp(addresses: readonly string[]): Promise<Map<string, AbuseAnswer>> {
    const answers = new Map<string, AbuseAnswer>();
    if (addresses.length === 0) return answers;
    const cached = await this.redis.mget(addresses.map((a) => CACHE_PREFIX + a));
    const misses: string[] = [];
    addresses.forEach((address, i) => {
      const hit = cached[i];
      const answer = hit ? parseCached(hit) : undefined;
      if (answer) answers.set(address, answer);
      else misses.push(address);
    });
    if (answers.size > 0) this.counts.cached.inc(answers.size);
    let next = 0;
    const worker = async () => {
      while (next < misses.length) {
        const address = misses[next++] as string;
        const answer = await this.fetchOne(address);
        if (answer === 'stop') {
          this.counts.skipped.inc(misses.length - next + 1);
          next = misses.length;
          return;
        }
        if (answer) answers.set(address, answer);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency, misses.length) }, worker));
    return answers;
  }

  /** One address through quota and breaker; 'stop' when no more calls can be made now. */
  private async fetchOne(address: string): Promise<AbuseAnswer | undefined | 'stop'> {
    if (Date.now() < this.pausedUntil || this.breaker.opened) return 'stop';
    try {
      await this.quota.consume(this.quotaKey, 1);
    } catch (error) {
      if (!(error instanceof RateLimiterRes)) throw error; // Redis failed: the batch is retried
      this.pause(error.msBeforeNext, `the daily quota of ${this.options.requests_per_day} calls is spent`);
      return 'stop';
    }
    let answer: AbuseAnswer;
    try {
      answer = await this.breaker.fire(address);
    } catch (error) {
      if (error instanceof QuotaSpent) {
        this.pause(error.retryAfterMs, 'AbuseIPDB answered 429 (quota spent)');
        return 'stop';
      }
      if (this.breaker.opened) return 'stop';
      this.counts.failed.inc();
      this.logger.debug(`AbuseIPDB lookup of ${address} failed: ${(error as Error).message}`);
      return undefined;
    }
    this.counts.called.inc();
    await this.redis.set(CACHE_PREFIX + address, JSON.stringify(answer), 'EX', this.options.cache_ttl_seconds);
    return answer;
  }

  private pause(ms: number, why: string): void {
    const until = Date.now() + ms;
    if (until <= this.pausedUntil) return;
    this.pausedUntil = until;
    this.logger.warn(`AbuseIPDB: ${why}; no call until ${new Date(until).toISOString()}, scores are null meanwhile`);
  }

  private async call(address: string): Promise<AbuseAnswer> {
    const url = new URL(this.options.url);
    url.searchParams.set('ipAddress', address);
    url.searchParams.set('maxAgeInDays', String(this.options.max_age_days));
    const response = await fetch(url, {
      headers: { Key: this.options.api_key, Accept: 'application/json' },
      signal: AbortSignal.timeout(this.options.timeout_ms),
    });
    const text = await response.text();
    if (response.status === 429) {
      const seconds = Number(response.headers.get('retry-after'));
      throw new QuotaSpent(Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 60_000);
    }
    if (!response.ok) throw new Error(`AbuseIPDB answered ${response.status}: ${errorDetail(text)}`);
    const answer = parseAnswer(text);
    if (!answer) throw new Error(`AbuseIPDB answered 200 without a score: ${text.slice(0, 200)}`);
    return answer;
  }

  close(): void {
    this.breaker.shutdown();
  }
}

/** `{"data": {"abuseConfidenceScore": 100, "totalReports": 7, …}}` */
function parseAnswer(text: string): AbuseAnswer | undefined {
  try {
    const data = (JSON.parse(text) as { data?: { abuseConfidenceScore?: unknown; totalReports?: unknown } }).data;
    const score = data?.abuseConfidenceScore;
    const reports = data?.totalReports ?? 0;
    if (!Number.isInteger(score) || (score as number) < 0 || (score as number) > 100) return undefined;
    if (!Number.isInteger(reports) || (reports as number) < 0) return undefined;
    return { score: score as number, reports: reports as number };
  } catch {
    return undefined;
  }
}

function parseCached(text: string): AbuseAnswer | undefined {
  try {
    const { score, reports } = JSON.parse(text) as { score?: unknown; reports?: unknown };
    return Number.isInteger(score) && Number.isInteger(reports)
      ? { score: score as number, reports: reports as number }
      : undefined;
  } catch {
    return undefined;
  }
}

/** `{"errors":[{"detail":"…","status":422}]}`, or the start of whatever came. */
function errorDetail(text: string): string {
  try {
    const detail = (JSON.parse(text) as { errors?: { detail?: unknown }[] }).errors?.[0]?.detail;
    if (typeof detail === 'string') return detail;
  } catch {
    // not JSON
  }
  return text.slice(0, 200);
}
