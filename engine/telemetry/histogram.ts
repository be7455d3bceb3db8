/**
 * Histograms kept as plain numbers on the hot path and turned into Prometheus series only at scrape, like
 * the stage counters: `Buckets.observe` is a short loop over a few bounds, with no label hashing. A family
 * registers on a prom-client `Registry` as a metric of its own whose `get()` reads the buckets of every series.
 */
import type { Metric, Registry } from 'prom-client';

/** Upper bounds in seconds. */
export const DURATION_BUCKETS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];
/** Checkpoints and commits: milliseconds to a minute. */
export const COMMIT_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];
/** End-to-end freshness: a tenth of a second to an hour (older records fall in `+Inf`). */
export const FRESHNESS_BUCKETS: readonly number[] = [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

/** Counts per bucket (not cumulative), their sum and count. */
export class Buckets {
  readonly bounds: readonly number[];
  /** `counts[i]`: observations ≤ bounds[i] and > bounds[i-1]; the last slot is `+Inf`. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** `weight` observations of `value` (a batch's records sharing one sampled value). */
  observe(value: number, weight = 1): void {
    // NaN, negative weights and ∞ would break the series' monotonicity for good.
    if (!(weight > 0) || !Number.isFinite(value)) return;
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + weight;
    this.sum += value * weight;
    this.count += weight;
  }
}

interface Sample {
  value: number;
  labels: Record<string, string | number>;
  metricName: string;
}

/** One histogram metric whose series are read from `series()` at scrape. */
export class HistogramFamily {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #series: () => Iterable<readonly [Record<string, string>, Buckets]>;

  constructor(
    registry: Registry,
    name: string,
    help: string,
    series: () => Iterable<readonly [Record<string, string>, Buckets]>,
  ) {
    this.name = name;
    this.help = help;
    this.#series = series;
    // The registry only calls `get()` and `reset()`, and reads `name`; the rest of `Metric` is prom-client's own API.
    registry.registerMetric(this as unknown as Metric);
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const values: Sample[] = [];
    for (const [labels, buckets] of this.#series()) {
      let cumulative = 0;
      const bounds = buckets.bounds;
      for (let i = 0; i <= bounds.length; i++) {
        cumulative += buckets.counts[i] as number;
        const le = i < bounds.length ? (bounds[i] as number) : '+Inf';
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le }, value: cumulative });
      }
      values.push({ metricName: `${this.name}_sum`, labels, value: buckets.sum });
      values.push({ metricName: `${this.name}_count`, labels, value: buckets.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** The figures live with their owners; `registry.resetMetrics()` leaves them. */
  reset(): void {}
}
