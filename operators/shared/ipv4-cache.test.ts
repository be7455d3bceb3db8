/** The IPv4 answer cache against a map of every answer given: it may forget, never answer wrongly. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Ipv4Cache } from './ipv4-cache.ts';

describe('Ipv4Cache', () => {
  it('answers only what was last kept for the address, and what was kept just now', () => {
    const address = fc.oneof(
      fc.constantFrom(0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0xc0000201),
      fc.integer({ min: 0, max: 0xffffffff }),
    );
    const op = fc.oneof(
      fc.record({ op: fc.constant('set' as const), address, value: fc.integer() }),
      fc.record({ op: fc.constant('get' as const), address }),
      fc.record({ op: fc.constant('clear' as const) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.array(op, { maxLength: 300 }), (size, ops) => {
        const cache = new Ipv4Cache<{ value: number }>(size);
        const kept = new Map<number, { value: number }>();
        for (const step of ops) {
          if (step.op === 'set') {
            const value = { value: step.value };
            cache.set(step.address, value);
            kept.set(step.address, value);
            expect(cache.get(step.address)).toBe(value);
          } else if (step.op === 'get') {
            const got = cache.get(step.address);
            if (got !== undefined) expect(got).toBe(kept.get(step.address));
          } else {
            cache.clear();
            kept.clear();
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('keeps the two addresses of a set used last', () => {
    // Size 1: two slots, one set: every address shares it.
    const cache = new Ipv4Cache<string>(1);
    cache.set(1, 'a');
    cache.set(2, 'b');
    expect([cache.get(1), cache.get(2)]).toEqual(['a', 'b']);
    expect(cache.get(1)).toBe('a');
    cache.set(3, 'c');
    // 2 was used less recently than 1.
    expect([cache.get(1), cache.get(2), cache.get(3)]).toEqual(['a', undefined, 'c']);
  });

  it('keeps most of as many addresses as it has slots, and never more', () => {
    const size = 50_000;
    const cache = new Ipv4Cache<number>(size);
    const address = (i: number) => Math.imul(i, 2654435761) >>> 0;
    for (let i = 0; i < size; i++) cache.set(address(i), i);
    let found = 0;
    for (let i = 0; i < size; i++) if (cache.get(address(i)) === i) found++;
    // Two ways per set: a set that three or more of the addresses hash to keeps two.
    expect(found / size).toBeGreaterThan(0.75);
    for (let i = size; i < 4 * size; i++) cache.set(address(i), i);
    found = 0;
    for (let i = 0; i < 4 * size; i++) if (cache.get(address(i)) === i) found++;
    expect(found).toBeLessThanOrEqual(2 ** Math.ceil(Math.log2(size)));
  });
});
