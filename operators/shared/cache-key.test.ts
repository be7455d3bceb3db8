import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cacheKey } from './cache-key.ts';
import { AnswerCache } from './enrich.ts';

const metrics = { counter: () => ({ inc() {} }), gauge: () => ({ set() {} }) };

/** Any UTF-16 text, lone surrogates included. */
const utf16 = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) });

/** V8's collector, as --expose-gc gives it (set now, read from a fresh context). */
function collect(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

describe('cacheKey', () => {
  it('is equal to the text it copies, whatever the text', () => {
    fc.assert(
      fc.property(utf16, utf16, utf16, (before, text, after) => {
        // As a field value is: a slice of a longer line.
        const line = `${before}${text}${after}`;
        const slice = line.slice(before.length, before.length + text.length);
        const key = cacheKey(slice);
        expect(key === slice).toBe(true);
        expect(new Map([[key, 1]]).get(slice)).toBe(1);
      }),
      { numRuns: 2000 },
    );
  });

  it('keeps nothing of the line it was sliced from', () => {
    collect();
    const before = process.memoryUsage().heapUsed;
    const keys: string[] = [];
    for (let i = 0; i < 200; i++) {
      // A 256 KiB line of its own (flat, not a rope), of which a 20-character slice is kept.
      const line = Buffer.from(`${i}:${'x'.repeat(256 * 1024)}`).toString('latin1');
      keys.push(cacheKey(line.slice(-20)));
    }
    collect();
    // Slices would keep the 200 lines: 50 MiB at least (one byte a character).
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(10 * 1024 * 1024);
    expect(keys.every((k) => k === 'x'.repeat(20))).toBe(true);
  });
});

describe('AnswerCache', () => {
  it('answers as computing every time does, with evictions, on keys sliced from lines', () => {
    const answer = (key: string) => Object.freeze([key.length, key.split('').reverse().join('')]);
    fc.assert(
      fc.property(
        fc.array(utf16, { minLength: 1, maxLength: 12 }),
        fc.array(fc.tuple(fc.nat(), utf16), { maxLength: 300 }),
        fc.integer({ min: 1, max: 8 }),
        (pool, draws, size) => {
          const cached = new AnswerCache<readonly unknown[]>(size, metrics, 'test', 'Keys');
          const uncached = new AnswerCache<readonly unknown[]>(0, metrics, 'test', 'Keys');
          for (const [pick, prefix] of draws) {
            const value = pool[pick % pool.length] as string;
            const key = `${prefix}${value}`.slice(prefix.length);
            expect(cached.get(key, answer)).toEqual(uncached.get(key, answer));
          }
          expect(uncached.hitRatio).toBe(0);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('finds an answer again by an equal key read from another line', () => {
    const cache = new AnswerCache<{ n: number }>(10, metrics, 'test', 'Keys');
    let computed = 0;
    const compute = () => ({ n: ++computed });
    const agent = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0';
    const first = cache.get(`1.2.3.4 "${agent}"`.slice(9, -1), compute);
    const second = cache.get(`5.6.7.8 "${agent}"`.slice(9, -1), compute);
    expect(second).toBe(first);
    expect(computed).toBe(1);
    expect(cache.hitRatio).toBe(0.5);
  });
});
