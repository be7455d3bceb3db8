/**
 * What one group of one window holds: counts, exact sums, min, max and DDSketch quantile sketches, and how they
 * are written to keyed state and read back. Every value is independent of the order records came in: counts
 * and sketch bins are integers, and sums are exactly rounded (below), so a window's result does not depend on
 * batch boundaries nor on the order of records within the lateness.
 */
import { DDSketch } from '@datadog/sketches-js';
import { HyperLogLog, type HyperLogLogState } from './hyperloglog.ts';
import type { AggregateFunction, AggregateSpec } from './schema.ts';

/** DDSketch's relative accuracy: a quantile is within 1% of the value of that rank. */
const RELATIVE_ACCURACY = 0.01;
const QUANTILES: Partial<Record<AggregateFunction, number>> = { p50: 0.5, p95: 0.95, p99: 0.99 };
/**
 * Up to this many values a group keeps them as they are (its quantiles are then exact), and makes a sketch only
 * past it: most groups of a fine-grained rollup (an endpoint in a minute) see a few records, and a sketch per
 * group would cost more in memory, time and checkpoint bytes than the values themselves.
 */
const EXACT_VALUES = 64;

/** A quantile's value among `values`, by the rank DDSketch uses (`q × (n − 1)`, rounded down). */
function exactQuantile(values: readonly number[], q: number): number {
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.floor(q * (sorted.length - 1))] as number;
}

function newSketch(): DDSketch {
  return new DDSketch({ relativeAccuracy: RELATIVE_ACCURACY });
}

/** The aggregates of the options, compiled: the state slots they read, one per field and kind. */
export interface Plan {
  readonly outputs: ReadonlyArray<{
    readonly name: string;
    readonly fn: AggregateFunction;
    /**
     * Index of its counter (`count`), sum (`sum`, `avg`), extreme (`min`, `max`), sketch (quantiles) or distinct
     * counter (`distinct`).
     */
    readonly slot: number;
  }>;
  readonly counters: ReadonlyArray<{ readonly field?: string; readonly low: number; readonly high: number }>;
  /** Fields summed (for `sum` and `avg`), fields of `min`, `max`, and sketched fields. */
  readonly sums: readonly string[];
  readonly mins: readonly string[];
  readonly maxs: readonly string[];
  readonly sketches: readonly string[];
  /** Fields counted distinct (HyperLogLog). */
  readonly distincts: readonly string[];
}

export function planOf(aggregates: Readonly<Record<string, AggregateSpec>>): Plan {
  const counters: Array<{ field?: string; low: number; high: number }> = [];
  const sums: string[] = [];
  const mins: string[] = [];
  const maxs: string[] = [];
  const sketches: string[] = [];
  const distincts: string[] = [];
  const slotOf = (list: string[], field: string) => {
    const at = list.indexOf(field);
    if (at >= 0) return at;
    list.push(field);
    return list.length - 1;
  };
  const outputs = Object.entries(aggregates).map(([name, spec]) => {
    const field = spec.field ?? '';
    let slot: number;
    if (spec.fn === 'count') {
      const [low, high] = spec.between ?? [Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY];
      counters.push({ ...(spec.field === undefined ? {} : { field: spec.field }), low: low ?? 0, high: high ?? 0 });
      slot = counters.length - 1;
    } else if (spec.fn === 'sum' || spec.fn === 'avg') slot = slotOf(sums, field);
    else if (spec.fn === 'min') slot = slotOf(mins, field);
    else if (spec.fn === 'max') slot = slotOf(maxs, field);
    else if (spec.fn === 'distinct') slot = slotOf(distincts, field);
    else slot = slotOf(sketches, field);
    return { name, fn: spec.fn, slot };
  });
  return { outputs, counters, sums, mins, maxs, sketches, distincts };
}

/** A group's values in a window. */
export class Accumulator {
  readonly counts: number[];
  /**
   * Per summed field: the sum while every value was an integer and it stays exact (a plain number, the common
   * case: bytes), else the partials of an exact sum; and how many numbers were added.
   */
  readonly sums: Array<number | number[]>;
  readonly summed: number[];
  readonly mins: Array<number | null>;
  readonly maxs: Array<number | null>;
  /** Per sketched field: nothing yet, the values themselves (up to EXACT_VALUES), or a sketch. */
  readonly sketches: Array<DDSketch | number[] | null>;
  /** Per field counted distinct: its values' HyperLogLog, made at its first value. */
  readonly distincts: Array<HyperLogLog | null>;

  constructor(plan: Plan) {
    this.counts = new Array(plan.counters.length).fill(0);
    this.sums = new Array(plan.sums.length).fill(0);
    this.summed = new Array(plan.sums.length).fill(0);
    this.mins = new Array(plan.mins.length).fill(null);
    this.maxs = new Array(plan.maxs.length).fill(null);
    this.sketches = new Array(plan.sketches.length).fill(null);
    this.distincts = new Array(plan.distincts.length).fill(null);
  }

  add(plan: Plan, record: Readonly<Record<string, unknown>>): void {
    const counters = plan.counters;
    for (let i = 0; i < counters.length; i++) {
      const c = counters[i] as Plan['counters'][number];
      if (c.field === undefined) (this.counts[i] as number)++;
      else {
        const value = record[c.field];
        if (value === null || value === undefined) continue;
        if (c.low !== Number.NEGATIVE_INFINITY || c.high !== Number.POSITIVE_INFINITY) {
          if (typeof value !== 'number' || value < c.low || value > c.high) continue;
        }
        (this.counts[i] as number)++;
      }
    }
    for (let i = 0; i < plan.sums.length; i++) {
      const value = record[plan.sums[i] as string];
      if (typeof value !== 'number' || !Number.isFinite(value)) continue;
      const sum = this.sums[i] as number | number[];
      if (typeof sum === 'number' && Number.isInteger(value) && Math.abs(sum + value) <= Number.MAX_SAFE_INTEGER) {
        this.sums[i] = sum + value;
      } else if (typeof sum === 'number') {
        const partials = [sum];
        addExact(partials, value);
        this.sums[i] = partials;
      } else addExact(sum, value);
      (this.summed[i] as number)++;
    }
    for (let i = 0; i < plan.mins.length; i++) {
      const value = record[plan.mins[i] as string];
      if (typeof value !== 'number' || Number.isNaN(value)) continue;
      const min = this.mins[i] as number | null;
      if (min === null || value < min) this.mins[i] = value;
    }
    for (let i = 0; i < plan.maxs.length; i++) {
      const value = record[plan.maxs[i] as string];
      if (typeof value !== 'number' || Number.isNaN(value)) continue;
      const max = this.maxs[i] as number | null;
      if (max === null || value > max) this.maxs[i] = value;
    }
    for (let i = 0; i < plan.sketches.length; i++) {
      const value = record[plan.sketches[i] as string];
      if (typeof value !== 'number' || !Number.isFinite(value)) continue;
      const held = this.sketches[i];
      if (held === null || held === undefined) this.sketches[i] = [value];
      else if (!Array.isArray(held)) held.accept(value);
      else if (held.length < EXACT_VALUES) held.push(value);
      else {
        const sketch = newSketch();
        for (const v of held) sketch.accept(v);
        sketch.accept(value);
        this.sketches[i] = sketch;
      }
    }
    for (let i = 0; i < plan.distincts.length; i++) {
      const value = record[plan.distincts[i] as string];
      if (value === null || value === undefined) continue;
      let distinct = this.distincts[i];
      if (distinct === null || distinct === undefined) {
        distinct = new HyperLogLog();
        this.distincts[i] = distinct;
      }
      distinct.add(value);
    }
  }

  /** The output fields, by aggregate name. */
  results(plan: Plan, into: Record<string, unknown>): void {
    for (const { name, fn, slot } of plan.outputs) {
      switch (fn) {
        case 'count':
          into[name] = this.counts[slot];
          break;
        case 'sum':
          into[name] = sumOf(this.sums[slot] as number | number[]);
          break;
        case 'avg': {
          const n = this.summed[slot] as number;
          into[name] = n === 0 ? null : sumOf(this.sums[slot] as number | number[]) / n;
          break;
        }
        case 'min':
          into[name] = this.mins[slot];
          break;
        case 'max':
          into[name] = this.maxs[slot];
          break;
        case 'distinct':
          into[name] = this.distincts[slot]?.count() ?? 0;
          break;
        default: {
          const held = this.sketches[slot];
          const q = QUANTILES[fn] as number;
          if (held === null || held === undefined) into[name] = null;
          else into[name] = Array.isArray(held) ? exactQuantile(held, q) : held.getValueAtQuantile(q);
        }
      }
    }
  }

  /**
   * JSON for keyed state; sketches as their protobuf encoding (the library's own), in base64. Copies: keyed state
   * turns values into lines after the pipeline has resumed, while this accumulator goes on changing.
   */
  toState(): AccumulatorState {
    return {
      n: this.counts.slice(),
      s: this.sums.map((sum) => (typeof sum === 'number' ? sum : sum.slice())),
      sn: this.summed.slice(),
      mn: this.mins.slice(),
      mx: this.maxs.slice(),
      q: this.sketches.map((s) => (s === null || Array.isArray(s) ? (s?.slice() ?? null) : encodeSketch(s))),
      // Absent without distinct counts: the state of other rollups stays as it was.
      ...(this.distincts.length === 0 ? {} : { d: this.distincts.map((d) => d?.toState() ?? null) }),
    };
  }

  static fromState(plan: Plan, state: AccumulatorState): Accumulator {
    const acc = new Accumulator(plan);
    acc.counts.splice(0, acc.counts.length, ...state.n);
    acc.sums.splice(0, acc.sums.length, ...state.s);
    acc.summed.splice(0, acc.summed.length, ...state.sn);
    acc.mins.splice(0, acc.mins.length, ...state.mn);
    acc.maxs.splice(0, acc.maxs.length, ...state.mx);
    acc.sketches.splice(
      0,
      acc.sketches.length,
      ...state.q.map((held) => (held === null || Array.isArray(held) ? held : decodeSketch(held))),
    );
    // State written before distinct counts existed has no `d` (and, by its options, no distinct aggregate).
    acc.distincts.splice(
      0,
      acc.distincts.length,
      ...(state.d ?? []).map((d) => (d === null ? null : HyperLogLog.fromState(d))),
    );
    return acc;
  }
}

export interface AccumulatorState {
  readonly n: number[];
  readonly s: Array<number | number[]>;
  readonly sn: number[];
  readonly mn: Array<number | null>;
  readonly mx: Array<number | null>;
  /** Per sketched field: null, the values, or a sketch's protobuf encoding in base64. */
  readonly q: Array<number[] | string | null>;
  /** Per field counted distinct: null (no value yet), or its HyperLogLog's state. */
  readonly d?: Array<HyperLogLogState | null>;
}

/** A sketch as its protobuf encoding (the library's own), in base64. */
function encodeSketch(sketch: DDSketch): string {
  return Buffer.from(sketch.toProto()).toString('base64');
}

function decodeSketch(text: string): DDSketch {
  const sketch = DDSketch.fromProto(Buffer.from(text, 'base64'));
  // The encoding carries gamma, from which the relative accuracy comes back a few bits off: the mapping of a
  // sketch made anew, with the same bins, gives quantiles equal to the bit to those of the original.
  sketch.mapping = newSketch().mapping;
  return sketch;
}

/**
 * Adds `x` to an exact sum kept as non-overlapping partials (Shewchuk's algorithm, as Python's math.fsum): the sum
 * is then correctly rounded whatever the order of the values, which a running float sum is not. Hand-written: it
 * is a dozen lines, and no well-kept npm package offers it with a state one can store.
 */
function addExact(partials: number[], value: number): void {
  let x = value;
  let i = 0;
  for (let j = 0; j < partials.length; j++) {
    let y = partials[j] as number;
    if (Math.abs(x) < Math.abs(y)) [x, y] = [y, x];
    const hi = x + y;
    const lo = y - (hi - x);
    if (lo !== 0) partials[i++] = lo;
    x = hi;
  }
  partials.length = i;
  partials.push(x);
}

/** The correctly rounded sum of the partials (or the exact integer sum itself). */
function sumOf(sum: number | readonly number[]): number {
  if (typeof sum === 'number') return sum;
  const partials = sum;
  let n = partials.length;
  if (n === 0) return 0;
  let hi = partials[--n] as number;
  let lo = 0;
  while (n > 0) {
    const x = hi;
    const y = partials[--n] as number;
    hi = x + y;
    const yr = hi - x;
    lo = y - yr;
    if (lo !== 0) break;
  }
  // Round half-even correction, as in CPython's math.fsum.
  if (n > 0 && ((lo < 0 && (partials[n - 1] as number) < 0) || (lo > 0 && (partials[n - 1] as number) > 0))) {
    const y = lo * 2;
    const x = hi + y;
    const yr = x - hi;
    if (y === yr) hi = x;
  }
  return hi;
}
