/**
 * Rate anomalies per key over event time. Records are counted per key in buckets of `bucket_seconds`; when the
 * engine's watermark (`ctx.watermark()`, settings `event_time_field`, `watermark_lateness_seconds`) has passed a
 * bucket's end, the bucket closes: its count is compared with the key's baseline — an exponentially weighted
 * moving mean and variance over the key's past buckets (Finch, "Incremental calculation of weighted mean and
 * variance", 2009) — flagged when it is `threshold` deviations away, then folded into the baseline.
 *
 * Only keys with records in the closing buckets (and, with `direction: both`, keys whose baseline is large enough
 * for a drop to count) are touched when buckets close; the empty buckets of a quiet key are folded in when it is
 * next seen (they cannot be anomalous: a rise needs `min_count` records, a drop a baseline of `min_count`). So a
 * checkpoint writes the keys that had traffic, not every key held.
 */
import type { KeyedState, OperatorContext, PortRecords, StageReport, Transform } from '../../../engine/operator.ts';
import { type EtlRecord, eventTimeOf } from '../../../engine/record.ts';
import { type FieldReader, fieldReader, keyOf } from '../../shared/fields.ts';
import { ANOMALIES_PORT, type AnomaliesOptions } from './schema.ts';

/**
 * A key's state: `through`, the last bucket folded into the baseline; the baseline's mean, variance and number of
 * buckets; the last bucket with a record; and the counts of buckets not closed yet, as [bucket, count] pairs.
 * Never changed in place: a checkpoint may still be serialising the previous value.
 */
type KeyState = readonly [
  through: number,
  mean: number,
  variance: number,
  buckets: number,
  last: number,
  open: number[],
];

interface Saved {
  /** The last closed bucket; null before any. */
  readonly closed: number | null;
  /** The greatest event time seen; null before any. */
  readonly latest: number | null;
}

export class AnomaliesTransform implements Transform {
  private readonly ctx: OperatorContext;
  private readonly options: AnomaliesOptions;
  private readonly readers: readonly FieldReader[];
  private readonly status: FieldReader | undefined;
  private readonly time: FieldReader;
  private readonly bucketMs: number;
  private readonly alpha: number;
  /** Empty buckets past which a baseline is 0 to double precision (2^-40 of what it was). */
  private readonly forgetAfter: number;
  private readonly keys: KeyedState<KeyState>;
  /** Keys with counts in open buckets; and with `direction: both`, keys whose baseline allows a drop. */
  private readonly active = new Set<string>();
  private readonly busy = new Set<string>();
  private closed = Number.NEGATIVE_INFINITY;
  private latest = Number.NEGATIVE_INFINITY;
  private sweptAt = Number.NEGATIVE_INFINITY;
  private readonly portRead: boolean;
  private readonly counters: {
    late: { inc(value?: number): void };
    untimed: { inc(value?: number): void };
    flagged: { inc(value?: number): void };
    evicted: { inc(value?: number): void };
    held: { set(value: number): void };
  };
  private warnedLate = false;
  /** This run's totals, for the summary. */
  private readonly totals = { counted: 0, late: 0, untimed: 0, flagged: 0, busiest: 0 };

  constructor(options: AnomaliesOptions, ctx: OperatorContext) {
    this.ctx = ctx;
    this.options = options;
    this.readers = options.key_fields.map(fieldReader);
    this.status = options.status_field === null ? undefined : fieldReader(options.status_field);
    this.time = fieldReader(options.time_field);
    this.bucketMs = options.bucket_seconds * 1000;
    this.alpha = 1 - 2 ** (-1 / options.half_life_buckets);
    this.forgetAfter = Math.ceil(40 * options.half_life_buckets);
    this.keys = ctx.keyed<KeyState>('keys');
    this.portRead = ctx.readPorts.has(ANOMALIES_PORT);
    const m = ctx.metrics;
    this.counters = {
      late: m.counter('etl_anomalies_late_records_total', 'Records for buckets already closed, not counted in rates'),
      untimed: m.counter('etl_anomalies_untimed_records_total', 'Records whose time field holds no time, not counted'),
      flagged: m.counter('etl_anomalies_flagged_total', 'Anomalies found (buckets flagged)'),
      evicted: m.counter('etl_anomalies_evicted_keys_total', 'Keys evicted because max_keys was reached'),
      held: m.gauge('etl_anomalies_keys', 'Keys held in state'),
    };
  }

  process(records: EtlRecord[]): PortRecords {
    let late = 0;
    let untimed = 0;
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as EtlRecord;
      const t = eventTimeOf(this.time(record));
      if (Number.isNaN(t)) {
        untimed++;
        continue;
      }
      const bucket = Math.floor(t / this.bucketMs);
      if (bucket <= this.closed) {
        late++;
        continue;
      }
      if (t > this.latest) this.latest = t;
      const key = this.keyOf(record);
      let state = this.keys.get(key);
      if (state === undefined) {
        this.makeRoom();
        state = [bucket - 1, 0, 0, 0, bucket, []];
      } else if (state[0] < this.closed) {
        // Buckets closed since the key was last seen were empty for it: fold them in (they cannot be flagged).
        state = this.fold(key, state, this.closed, []);
      }
      const open = [...state[5]];
      const at = open.indexOf(bucket);
      // Pairs [bucket, count]: an even index holds a bucket.
      if (at >= 0 && at % 2 === 0) open[at + 1] = (open[at + 1] as number) + 1;
      else open.push(bucket, 1);
      // A new key's baseline starts before its first bucket, also one that arrives out of order.
      const through = Math.min(state[0], bucket - 1);
      this.keys.set(key, [through, state[1], state[2], state[3], Math.max(state[4], bucket), open]);
      this.active.add(key);
    }
    if (late > 0) this.noteLate(late);
    if (untimed > 0) this.counters.untimed.inc(untimed);
    this.totals.counted += records.length - late - untimed;
    this.totals.late += late;
    this.totals.untimed += untimed;
    const anomalies = this.closeThrough(this.watermarkBucket());
    this.counters.held.set(this.keys.size);
    return this.ports(records, anomalies);
  }

  /** Closes the buckets the watermark has passed, also while no record arrives. */
  tick(): PortRecords {
    return this.ports([], this.closeThrough(this.watermarkBucket()));
  }

  /**
   * At the end of the input: closes every bucket before the one holding the greatest event time seen. That last
   * bucket may not be complete; it stays open in state, for a later run to go on counting.
   */
  flush(): PortRecords {
    return this.ports([], this.closeThrough(Math.floor(this.latest / this.bucketMs) - 1));
  }

  /** What the run saw: records counted, keys held, anomalies flagged; and why none, when the data is too thin. */
  summarize(): StageReport | undefined {
    const t = this.totals;
    if (t.counted + t.late + t.untimed === 0) return undefined;
    const n = (value: number) => value.toLocaleString('en-US');
    const records = (value: number) => `${n(value)} ${value === 1 ? 'record' : 'records'}`;
    const lines = [
      `${n(t.flagged)} ${t.flagged === 1 ? 'anomaly' : 'anomalies'} flagged over ${records(t.counted)} counted in ` +
        `${this.options.bucket_seconds} s buckets, ${n(this.keys.size)} ${this.keys.size === 1 ? 'key' : 'keys'} held`,
    ];
    if (t.flagged === 0 && t.busiest < this.options.min_count) {
      lines.push(
        `no closed bucket of a key reached min_count (${this.options.min_count}; the busiest held ${n(t.busiest)}): ` +
          'too few requests per key and bucket to judge; lengthen bucket_seconds or lower min_count',
      );
    }
    if (t.late > 0) lines.push(`${records(t.late)} arrived for buckets already closed, not counted`);
    if (t.untimed > 0) lines.push(`${records(t.untimed)} without a time in ${this.options.time_field}, not counted`);
    return { lines };
  }

  snapshot(): Saved {
    return {
      closed: Number.isFinite(this.closed) ? this.closed : null,
      latest: Number.isFinite(this.latest) ? this.latest : null,
    };
  }

  restore(state: unknown): void {
    const saved = state as Saved | undefined;
    this.closed = saved?.closed ?? Number.NEGATIVE_INFINITY;
    this.latest = saved?.latest ?? Number.NEGATIVE_INFINITY;
    this.active.clear();
    this.busy.clear();
    for (const [key, s] of this.keys.entries()) {
      if (s[5].length > 0) this.active.add(key);
      if (this.isBusy(s)) this.busy.add(key);
    }
    this.counters.held.set(this.keys.size);
  }

  private ports(records: EtlRecord[], anomalies: EtlRecord[]): PortRecords {
    if (anomalies.length === 0) return { default: records };
    this.counters.flagged.inc(anomalies.length);
    this.totals.flagged += anomalies.length;
    if (this.portRead) return { default: records, [ANOMALIES_PORT]: anomalies };
    // Nobody reads the port: the findings would be discarded unseen, so they are logged.
    for (const anomaly of anomalies) {
      this.ctx.logger.warn(`anomaly (no stage reads ${this.ctx.id}.${ANOMALIES_PORT})`, anomaly);
    }
    return { default: records };
  }

  private watermarkBucket(): number {
    const watermark = this.ctx.watermark();
    return watermark === undefined ? Number.NEGATIVE_INFINITY : Math.floor(watermark / this.bucketMs) - 1;
  }

  private keyOf(record: EtlRecord): string {
    return this.status ? keyOf(this.readers, record, statusClass(this.status(record))) : keyOf(this.readers, record);
  }

  /** Closes buckets up to `upTo`: folds them into the baselines of the keys they concern; the anomalies found. */
  private closeThrough(upTo: number): EtlRecord[] {
    if (upTo <= this.closed) return [];
    const anomalies: EtlRecord[] = [];
    const touched = this.options.direction === 'both' ? new Set([...this.active, ...this.busy]) : [...this.active];
    for (const key of touched) {
      const state = this.keys.get(key);
      if (state !== undefined) this.keys.set(key, this.fold(key, state, upTo, anomalies));
    }
    this.closed = upTo;
    if (this.closed - this.sweptAt >= this.forgetAfter / 4) this.forget();
    // Several buckets may close at once (a fast replay): in time order, whatever the order of the keys.
    return anomalies.sort((a, b) => (a.anomaly_bucket_start as string).localeCompare(b.anomaly_bucket_start as string));
  }

  /** `state` with buckets up to `upTo` folded into the baseline; anomalies found go to `out`. */
  private fold(key: string, state: KeyState, upTo: number, out: EtlRecord[]): KeyState {
    let [through, mean, variance, buckets] = state;
    const open = state[5];
    const later: number[] = [];
    const counts = new Map<number, number>();
    for (let i = 0; i < open.length; i += 2) {
      const bucket = open[i] as number;
      if (bucket <= upTo) counts.set(bucket, open[i + 1] as number);
      else later.push(bucket, open[i + 1] as number);
    }
    const lastCounted = counts.size === 0 ? through : Math.max(...counts.keys());
    const alpha = this.alpha;
    for (let bucket = through + 1; bucket <= upTo; bucket++) {
      if (bucket > lastCounted && upTo - bucket >= this.forgetAfter && !this.dropCounts(mean)) {
        // Only empty buckets are left, enough of them to take the baseline to 0, and none can be flagged: skip.
        buckets += upTo - bucket + 1;
        mean = 0;
        variance = 0;
        break;
      }
      const count = counts.get(bucket) ?? 0;
      if (count > this.totals.busiest) this.totals.busiest = count;
      const anomaly = this.judge(key, bucket, count, mean, variance, buckets);
      if (anomaly) out.push(anomaly);
      if (buckets === 0) {
        // The first bucket is the baseline: starting from 0 would bias it low for several half-lives.
        mean = count;
      } else {
        const d = count - mean;
        mean += alpha * d;
        variance = (1 - alpha) * (variance + alpha * d * d);
      }
      buckets++;
    }
    through = Math.max(through, upTo);
    const next: KeyState = [through, mean, variance, buckets, state[4], later];
    if (later.length === 0) this.active.delete(key);
    if (this.isBusy(next)) this.busy.add(key);
    else this.busy.delete(key);
    return next;
  }

  private isBusy(state: KeyState): boolean {
    return this.dropCounts(state[1]);
  }

  /** Whether a drop from a baseline of `mean` can be flagged. */
  private dropCounts(mean: number): boolean {
    return this.options.direction === 'both' && mean >= this.options.min_count;
  }

  /** The anomaly record when `count` breaks from the baseline (mean, variance over `buckets` buckets). */
  private judge(
    key: string,
    bucket: number,
    count: number,
    mean: number,
    variance: number,
    buckets: number,
  ): EtlRecord | undefined {
    const o = this.options;
    if (buckets < o.warmup_buckets) return undefined;
    // A floor on the deviation: a steady key (variance near 0) must not be flagged for one extra request.
    // sqrt(mean) is the deviation of a Poisson count with that mean.
    const deviation = Math.max(Math.sqrt(variance), Math.sqrt(mean), 1);
    const score = (count - mean) / deviation;
    const up = score >= o.threshold && count >= o.min_count;
    const down = o.direction === 'both' && score <= -o.threshold && mean >= o.min_count;
    if (!up && !down) return undefined;
    const values = JSON.parse(key) as unknown[];
    const record: EtlRecord = {};
    o.key_fields.forEach((field, i) => {
      record[field] = values[i];
    });
    if (o.status_field !== null) record.status_class = values[o.key_fields.length];
    record.anomaly_bucket_start = new Date(bucket * this.bucketMs).toISOString();
    record.anomaly_bucket_seconds = o.bucket_seconds;
    record.anomaly_observed = count;
    record.anomaly_baseline = round(mean);
    record.anomaly_deviation = round(deviation);
    record.anomaly_score = round(score);
    record.anomaly_direction = up ? 'up' : 'down';
    record.anomaly_baseline_buckets = buckets;
    return record;
  }

  /** Drops keys quiet for so long that their baseline is 0 and nothing of them is open. */
  private forget(): void {
    const gone: string[] = [];
    for (const [key, s] of this.keys.entries()) {
      if (s[5].length === 0 && this.closed - s[4] >= this.forgetAfter) gone.push(key);
    }
    for (const key of gone) {
      this.keys.delete(key);
      this.busy.delete(key);
    }
    this.sweptAt = this.closed;
  }

  /** Before a new key: at `max_keys`, the least recently seen tenth goes. */
  private makeRoom(): void {
    const max = this.options.max_keys;
    if (this.keys.size < max) return;
    const count = this.keys.size - (max - Math.max(1, Math.floor(max / 10)));
    // Keys per last bucket seen (few distinct values): the cut-off bucket without sorting every key.
    const perBucket = new Map<number, number>();
    for (const [, s] of this.keys.entries()) perBucket.set(s[4], (perBucket.get(s[4]) ?? 0) + 1);
    let cutoff = Number.NEGATIVE_INFINITY;
    let below = 0;
    for (const [bucket, n] of [...perBucket].sort((a, b) => a[0] - b[0])) {
      cutoff = bucket;
      if (below + n >= count) break;
      below += n;
    }
    // Every key last seen before the cut-off bucket, and as many as needed of those last seen in it.
    let atCutoff = count - below;
    const gone: string[] = [];
    for (const [key, s] of this.keys.entries()) {
      if (s[4] < cutoff) gone.push(key);
      else if (s[4] === cutoff && atCutoff > 0) {
        gone.push(key);
        atCutoff--;
      }
    }
    for (const key of gone) {
      this.keys.delete(key);
      this.active.delete(key);
      this.busy.delete(key);
    }
    this.counters.evicted.inc(gone.length);
    this.ctx.logger.warn(`max_keys (${max}) reached: evicted the ${gone.length} least recently seen keys`, {
      evicted: gone.length,
    });
  }

  private noteLate(count: number): void {
    this.counters.late.inc(count);
    if (this.warnedLate) return;
    this.warnedLate = true;
    this.ctx.logger.warn(
      `${count} record(s) arrived for buckets already closed (behind the watermark); they pass on but are not ` +
        'counted in rates (etl_anomalies_late_records_total; warned once per run)',
    );
  }
}

/** `2xx` for 200–299 (a number or numeric text), …; null for anything else. */
export function statusClass(value: unknown): string | null {
  const status = typeof value === 'string' ? Number(value) : value;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) return null;
  return `${Math.floor(status / 100)}xx`;
}

/** Four decimals: enough to read, and stable in JSON and numeric columns. */
function round(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}
