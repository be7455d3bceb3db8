/** The trie against the obvious answer: scan every range, keep the longest that holds the address. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parsePrefix, prefixText } from './address.ts';
import { parseList } from './lists.ts';
import { PrefixTrie, TABLE_FROM } from './trie.ts';

interface Range {
  readonly bytes: number[];
  readonly length: number;
}

function holds(range: Range, address: readonly number[]): boolean {
  for (let i = 0; i < range.length; i++) {
    const bit = (b: readonly number[]) => ((b[i >> 3] as number) >> (7 - (i & 7))) & 1;
    if (bit(range.bytes) !== bit(address)) return false;
  }
  return true;
}

/** The first-inserted among the longest ranges holding the address. */
function naive(ranges: readonly Range[], address: readonly number[]): { value: number; length: number } | undefined {
  let best: { value: number; length: number } | undefined;
  ranges.forEach((range, value) => {
    if (holds(range, address) && (best === undefined || range.length > best.length))
      best = { value, length: range.length };
  });
  return best;
}

/**
 * Ranges and addresses that meet: ranges cut at random lengths from a few base addresses (so that they nest
 * and repeat) or from anywhere, addresses made from a range's bytes with one bit changed, or anything.
 */
function scenario(bytes: 4 | 16) {
  const byte = fc.oneof(fc.constantFrom(0, 1, 10, 128, 192, 255), fc.integer({ min: 0, max: 255 }));
  const address = fc.array(byte, { minLength: bytes, maxLength: bytes });
  const length = fc.integer({ min: 0, max: bytes * 8 });
  return fc
    .array(address, { minLength: 1, maxLength: 4 })
    .chain((bases) =>
      fc.array(
        fc.oneof(fc.record({ bytes: fc.constantFrom(...bases), length }), fc.record({ bytes: address, length })),
        { maxLength: 60 },
      ),
    )
    .chain((ranges) =>
      fc.tuple(
        fc.constant(ranges),
        fc.array(
          fc.oneof(
            address,
            ranges.length === 0
              ? address
              : fc
                  .tuple(fc.constantFrom(...ranges), fc.integer({ min: 0, max: bytes * 8 - 1 }))
                  .map(([r, flip]) => r.bytes.map((b, i) => (i === flip >> 3 ? b ^ (1 << (7 - (flip & 7))) : b))),
          ),
          { minLength: 1, maxLength: 40 },
        ),
      ),
    );
}

describe('PrefixTrie', () => {
  it.each([
    [4, 32, 'walks', TABLE_FROM],
    [16, 128, 'walks', TABLE_FROM],
    [4, 32, 'starts from its table', 0],
    [16, 128, 'starts from its table', 0],
  ] as const)(
    'answers as a scan of every range does (%i-byte addresses, %i bits; lookups %s)',
    (bytes, bits, _how, tableFrom) => {
      fc.assert(
        fc.property(scenario(bytes), fc.nat(), ([ranges, addresses], cut) => {
          const trie = new PrefixTrie(bits, tableFrom);
          // Some lookups before the last inserts: the table must follow them.
          const early = ranges.length === 0 ? 0 : cut % (ranges.length + 1);
          ranges.forEach((r, i) => {
            if (i === early) for (const address of addresses) trie.lookup(address);
            trie.insert(r.bytes, r.length, i);
          });
          // Built ahead (as a list does once loaded), or by the first lookup.
          if (cut % 2 === 0) trie.prepare();
          for (const address of addresses) {
            const want = naive(ranges, address);
            const got = trie.lookup(address);
            if (want === undefined) expect(got).toBeUndefined();
            // Equal ranges keep the first value: compare what the value stands for.
            else
              expect(got && { length: got.length, holds: holds(ranges[got.value] as Range, address) }).toEqual({
                length: want.length,
                holds: true,
              });
          }
        }),
        { numRuns: 300 },
      );
    },
  );

  it('grows past its first arrays', () => {
    const trie = new PrefixTrie(32);
    for (let i = 0; i < 5000; i++) trie.insert([10, i >> 8, i & 255, 0], 24, i);
    expect(trie.size).toBe(5000);
    expect(trie.lookup([10, 19, 10, 77])).toEqual({ value: (19 << 8) | 10, length: 24 });
    expect(trie.lookup([11, 0, 0, 0])).toBeUndefined();
    // A block shorter than the table's 16 bits, and one inside it, once the table is built.
    trie.insert([10, 0, 0, 0], 8, -2);
    expect(trie.lookup([10, 200, 1, 1])).toEqual({ value: -2, length: 8 });
    expect(trie.lookup([10, 19, 10, 77])).toEqual({ value: (19 << 8) | 10, length: 24 });
    trie.insert([10, 200, 0, 0], 16, -3);
    expect(trie.lookup([10, 200, 1, 1])).toEqual({ value: -3, length: 16 });
  });
});

describe('lists as text, against a scan', () => {
  const v4 = fc
    .tuple(fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 4, maxLength: 4 }), fc.integer({ min: 8, max: 32 }))
    .map(([b, len]) => `${b.join('.')}/${len}`);
  const v6 = fc
    .tuple(
      fc.array(fc.constantFrom(0, 1, 0xdb8, 0x2001, 0xffff, 0xabcd), { minLength: 8, maxLength: 8 }),
      fc.integer({ min: 16, max: 128 }),
    )
    .map(([parts, len]) => `${parts.map((p) => p.toString(16)).join(':')}/${len}`);

  it('finds for each address the most specific block of the file, IPv4 and IPv6', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(v4, v6), { maxLength: 50 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (blocks, picks) => {
          const { table, refused } = parseList(blocks.map((b) => `${b} # a comment`).join('\n'));
          expect(refused).toEqual([]);
          const ranges = blocks.map((b) => parsePrefix(b) as NonNullable<ReturnType<typeof parsePrefix>>);
          // Addresses inside the blocks (their first address) and one outside most.
          const addresses = [
            ...picks.map((p) => (ranges.length === 0 ? [8, 8, 8, 8] : (ranges[p % ranges.length]?.bytes as number[]))),
            [203, 0, 113, 9],
          ];
          for (const address of addresses) {
            const candidates = ranges.filter((r) => r.bytes.length === address.length);
            const want = naive(candidates, address);
            const got = table.lookup(address);
            expect(got?.length).toBe(want?.length);
            if (want)
              expect(got?.entry.range).toBe(prefixText(candidates[want.value] as NonNullable<(typeof ranges)[0]>));
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('addresses', () => {
  it('clears host bits of blocks and refuses bad lengths', () => {
    expect(prefixText(parsePrefix('192.0.2.77/24') as NonNullable<ReturnType<typeof parsePrefix>>)).toBe(
      '192.0.2.0/24',
    );
    expect(prefixText(parsePrefix('2001:db8:ffff::1/33') as NonNullable<ReturnType<typeof parsePrefix>>)).toBe(
      '2001:db8:8000::/33',
    );
    expect(prefixText(parsePrefix('::ffff:192.0.2.77/120') as NonNullable<ReturnType<typeof parsePrefix>>)).toBe(
      '192.0.2.0/24',
    );
    for (const bad of ['1.2.3.4/33', '::/129', '1.2.3.4/', '1.2.3.4/x', '1.2.3/8'])
      expect(parsePrefix(bad), bad).toBeUndefined();
  });
});
