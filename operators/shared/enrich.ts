/**
 * What enrichments that add fields from one field's value share (geoip, user_agent): reading the source field,
 * a cache of answers by value that counts its hits for the stage's metrics, and making the enriched record, new or
 * changed in place (threat_intel too).
 */
import { LRUCache } from 'lru-cache';
import type { EtlRecord } from '../../engine/record.ts';
import type { OperatorMetrics } from '../../engine/operator.ts';
import { cacheKey } from './cache-key.ts';

/**
 * Makes records of `record`'s fields and `keys` set to `values` (in order). Generated code, because an object
 * literal with the names written out (`{ ...record, "geo_city": values[4] }`) is built three times faster than
 * the same object filled by computed-key stores, which V8 cannot specialise. The keys are field names the options
 * schema restricts to `[a-z0-9_]`, and they are written as JSON string literals anyway.
 */
export function recordBuilder(keys: readonly string[]): (record: EtlRecord, values: readonly unknown[]) => EtlRecord {
  const fields = keys.map((key, i) => `${JSON.stringify(key)}: values[${i}]`).join(', ');
  return new Function('record', 'values', `return { ...record, ${fields} };`) as (
    record: EtlRecord,
    values: readonly unknown[],
  ) => EtlRecord;
}

/**
 * `recordBuilder`'s counterpart for stages that change records in place (`changesRecords`): sets `keys` to
 * `values` on `record` itself and returns it. Generated for the same reason (named stores V8 specialises); a key the
 * record has already keeps its place, as it does in the spread. It spares the copy of a 30–45-field record per stage
 * and the garbage it leaves.
 */
export function recordUpdater(keys: readonly string[]): (record: EtlRecord, values: readonly unknown[]) => EtlRecord {
  const stores = keys.map((key, i) => `record[${JSON.stringify(key)}] = values[${i}];`).join(' ');
  return new Function('record', 'values', `${stores} return record;`) as (
    record: EtlRecord,
    values: readonly unknown[],
  ) => EtlRecord;
}

/**
 * Answers by key, least recently used evicted past `size` entries (none kept when `size` is 0), with the hit
 * ratio since the start published as `<metric>_cache_hit_ratio` and hits and misses as counters. Two
 * generations of Maps (quick-lru's scheme) cost 3% fewer instructions in the enrichment chain, but its peak RSS
 * at 1M lines was 353–480 MiB in five runs, against 282–329 MiB in nine of ten with lru-cache (460 in one;
 * bench/enrich.ts full chain): lru-cache stays.
 */
export class AnswerCache<V extends object> {
  private readonly lru: LRUCache<string, V> | undefined;
  private hits = 0;
  private lookups = 0;
  private published = { hits: 0, lookups: 0 };
  private readonly hitCounter: { inc(value?: number): void };
  private readonly missCounter: { inc(value?: number): void };
  private readonly ratio: { set(value: number): void };

  constructor(size: number, metrics: OperatorMetrics, metric: string, what: string) {
    this.lru = size > 0 ? new LRUCache<string, V>({ max: size }) : undefined;
    this.hitCounter = metrics.counter(`${metric}_cache_hits_total`, `${what} answered from the cache`);
    this.missCounter = metrics.counter(`${metric}_cache_misses_total`, `${what} not in the cache, computed`);
    this.ratio = metrics.gauge(`${metric}_cache_hit_ratio`, `Share of ${what.toLowerCase()} answered from the cache`);
  }

  get(key: string, compute: (key: string) => V): V {
    this.lookups++;
    const cached = this.lru?.get(key);
    if (cached !== undefined) {
      this.hits++;
      return cached;
    }
    const value = compute(key);
    this.lru?.set(cacheKey(key), value);
    return value;
  }

  clear(): void {
    this.lru?.clear();
  }

  /** Counts lookups a cache in front of this one made (`hits` of `lookups` answered there) in its figures. */
  tally(hits: number, lookups: number): void {
    this.hits += hits;
    this.lookups += lookups;
  }

  get hitRatio(): number {
    return this.lookups === 0 ? 0 : this.hits / this.lookups;
  }

  /** Publishes the counts since the last call (once per batch: counting per record would cost more). */
  publish(): void {
    const hits = this.hits - this.published.hits;
    const lookups = this.lookups - this.published.lookups;
    if (lookups === 0) return;
    this.hitCounter.inc(hits);
    this.missCounter.inc(lookups - hits);
    this.ratio.set(this.hits / this.lookups);
    this.published = { hits: this.hits, lookups: this.lookups };
  }
}
