/** The kept verdicts agree with a brute-force reading of the lists, for every address, repeated or not. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { addressBytes, parsePrefix, prefixText } from './address.ts';
import { ListVerdicts, type ListVerdict, matchLists, type NamedTable } from './list-verdicts.ts';
import { IpTable } from './lists.ts';

const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));
// Few distinct high bits, so that blocks and addresses overlap often.
const v6 = fc
  .tuple(fc.constantFrom('2001:db8', '2a01:4f8', 'fe80:0'), fc.nat(3), fc.nat(0xffff))
  .map(([head, mid, tail]) => `${head}:${mid}::${tail.toString(16)}`);
const v4Near = fc.tuple(fc.constantFrom(10, 192), fc.nat(3), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));
const address = fc.oneof(
  v4,
  v4Near,
  v6,
  v4Near.map((a) => `::ffff:${a}`),
  fc.constantFrom('-', '', 'host.example', '010.0.0.1', '1.2.3', '[2001:db8::1]'),
);
const block = fc.tuple(fc.oneof(v4, v4Near, v6), fc.nat(128)).map(([a, bits]) => {
  const max = a.includes(':') ? 128 : 32;
  return `${a}/${bits % (max + 1)}`;
});
const list = fc.array(fc.tuple(block, fc.option(fc.constantFrom('SBL1', 'SBL2'))), { maxLength: 30 });

interface Reference {
  readonly name: string;
  readonly blocks: readonly { bytes: number[]; length: number; range: string; note: string | null }[];
}

function holds(block: { bytes: number[]; length: number }, bytes: readonly number[]): boolean {
  if (block.bytes.length !== bytes.length) return false;
  for (let i = 0; i < block.length; i++) {
    const bit = (b: readonly number[]) => ((b[i >> 3] as number) >> (7 - (i & 7))) & 1;
    if (bit(block.bytes) !== bit(bytes)) return false;
  }
  return true;
}

/** Every block of every list tested in turn. */
function bruteForce(lists: readonly Reference[], value: string): ListVerdict | undefined {
  const bytes = addressBytes(value);
  if (bytes === undefined) return undefined;
  const names: string[] = [];
  let best: Reference['blocks'][number] | undefined;
  for (const list of lists) {
    let found: Reference['blocks'][number] | undefined;
    for (const b of list.blocks) if (holds(b, bytes) && (!found || b.length > found.length)) found = b;
    if (!found) continue;
    names.push(list.name);
    if (!best || found.length > best.length) best = found;
  }
  return best ? { names: names.join(','), range: best.range, note: best.note } : undefined;
}

function tables(given: readonly (readonly [string, string | null])[][]): {
  tables: NamedTable[];
  reference: Reference[];
} {
  const tables: NamedTable[] = [];
  const reference: Reference[] = [];
  given.forEach((entries, i) => {
    const table = new IpTable();
    const blocks: { bytes: number[]; length: number; range: string; note: string | null }[] = [];
    for (const [text, note] of entries) {
      const prefix = parsePrefix(text);
      if (!prefix) continue;
      table.add(prefix, note);
      const range = prefixText(prefix);
      // A block given twice keeps its first note, as the table does.
      if (!blocks.some((b) => b.range === range))
        blocks.push({ bytes: prefix.bytes, length: prefix.length, range, note });
    }
    const name = `list${i}`;
    tables.push({ name, lookup: (a) => table.lookup(a) });
    reference.push({ name, blocks });
  });
  return { tables, reference };
}

describe('ListVerdicts', () => {
  it('answers as every block tested in turn would, kept or not (property)', () => {
    fc.assert(
      fc.property(
        fc.array(list, { minLength: 1, maxLength: 3 }),
        fc.array(address, { minLength: 1, maxLength: 12 }),
        fc.array(fc.nat(40), { maxLength: 60 }),
        fc.integer({ min: 1, max: 8 }),
        (given, pool, picks, size) => {
          const { tables: lists, reference } = tables(given);
          const kept = new ListVerdicts(() => lists, size);
          // Each address of the pool once, then picked again at random: answers computed and answers kept.
          for (const value of [...pool, ...picks.map((p) => pool[p % pool.length] as string)]) {
            const expected = bruteForce(reference, value);
            expect(matchLists(lists, value)).toEqual(expected);
            expect(kept.match(value)).toEqual(expected);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('answers anew after clear() when the lists changed', () => {
    let lists: NamedTable[] = [];
    const kept = new ListVerdicts(() => lists);
    expect(kept.match('192.0.2.1')).toBeUndefined();
    const table = new IpTable();
    table.add(parsePrefix('192.0.2.0/24') as NonNullable<ReturnType<typeof parsePrefix>>, 'SBL1');
    lists = [{ name: 'drop', lookup: (a) => table.lookup(a) }];
    expect(kept.match('192.0.2.1')).toBeUndefined();
    kept.clear();
    expect(kept.match('192.0.2.1')).toEqual({ names: 'drop', range: '192.0.2.0/24', note: 'SBL1' });
  });
});
