import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EXACT_LIMIT, HyperLogLog, type HyperLogLogState, STANDARD_ERROR } from './hyperloglog.ts';

const sketchOf = (values: Iterable<unknown>) => {
  const sketch = new HyperLogLog();
  for (const value of values) sketch.add(value);
  return sketch;
};

/** What keyed state does to it: JSON out, JSON in. */
const roundTrip = (sketch: HyperLogLog) =>
  HyperLogLog.fromState(JSON.parse(JSON.stringify(sketch.toState())) as HyperLogLogState);

/** `n` distinct client addresses, distinct from those of another `run`. */
const clients = (run: number, n: number, from = 0) =>
  Array.from({ length: n }, (_, i) => `${run}:198.51.${(from + i) >>> 8}.${(from + i) & 255}`);

describe('HyperLogLog', () => {
  it(`counts exactly up to ${EXACT_LIMIT} distinct values, whatever the repeats; null is no value`, () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.oneof(fc.string(), fc.integer(), fc.boolean()), { maxLength: EXACT_LIMIT }),
        fc.array(fc.nat(), { maxLength: 300 }),
        (distinct, repeats) => {
          const values: unknown[] = [...distinct, null, undefined];
          for (const r of repeats) if (distinct.length > 0) values.push(distinct[r % distinct.length]);
          expect(sketchOf(values).count()).toBe(distinct.length);
        },
      ),
      { numRuns: 200 },
    );
    // The number 1 and the text "1" are two values.
    expect(sketchOf([1, '1', 1, '1']).count()).toBe(2);
  });

  it('estimates within 5 standard errors (0.81% each) up to 100,000 distinct values', () => {
    fc.assert(
      fc.property(fc.integer({ min: EXACT_LIMIT + 1, max: 100_000 }), fc.nat(), (n, run) => {
        const sketch = sketchOf(clients(run, n));
        // Added twice: repeats change nothing.
        for (const value of clients(run, Math.min(n, 1000))) sketch.add(value);
        const error = Math.abs(sketch.count() - n) / n;
        expect(error).toBeLessThanOrEqual(5 * STANDARD_ERROR);
        expect(Number.isInteger(sketch.count())).toBe(true);
      }),
      { numRuns: 25 },
    );
  });

  it('merge(a, b) is the sketch of a ∪ b, on either side of the exact limit, in either order', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2000 }),
        fc.integer({ min: 0, max: 2000 }),
        fc.integer({ min: 0, max: 2000 }),
        fc.nat(),
        (onlyA, shared, onlyB, run) => {
          const a = [...clients(run, onlyA), ...clients(run, shared, 10_000)];
          const b = [...clients(run, shared, 10_000), ...clients(run, onlyB, 20_000)];
          const union = sketchOf([...a, ...b]);
          const ab = sketchOf(a);
          ab.merge(sketchOf(b));
          const ba = sketchOf(b);
          ba.merge(sketchOf(a));
          expect(ab.toState()).toEqual(union.toState());
          expect(ba.toState()).toEqual(union.toState());
          expect(ab.count()).toBe(union.count());
        },
      ),
      { numRuns: 40 },
    );
  });

  it('restores from its state exactly, and goes on as the original would', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 3000 }), fc.nat(), (n, more, run) => {
        const original = sketchOf(clients(run, n));
        const restored = roundTrip(original);
        expect(restored.toState()).toEqual(original.toState());
        expect(restored.count()).toBe(original.count());
        for (const value of clients(run, more, n)) {
          original.add(value);
          restored.add(value);
        }
        expect(restored.toState()).toEqual(original.toState());
      }),
      { numRuns: 40 },
    );
  });

  it('keeps its state compact: the hashes while exact, then 16 KiB of registers in base64', () => {
    expect(JSON.stringify(sketchOf(clients(0, 10)).toState()).length).toBeLessThan(150);
    const dense = sketchOf(clients(0, 50_000)).toState();
    expect('r' in dense && Buffer.from(dense.r, 'base64').length).toBe(16_384);
  });

  it('refuses a state that is not one', () => {
    expect(() => HyperLogLog.fromState({ r: Buffer.alloc(100).toString('base64') })).toThrow(/100 registers/);
    expect(() => HyperLogLog.fromState({ x: Buffer.alloc(12).toString('base64') })).toThrow(/partial hash/);
  });
});
