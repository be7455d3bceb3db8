/** How batches cross threads (engine/runtime/workers/codec.ts, columns.ts): what goes in comes out, origins included. */
import { deserialize, serialize } from 'node:v8';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type EtlRecord, ORIGIN, type Origin } from '../../engine/record.ts';
import { decodeBatch, decodePorts, encodeBatch, encodePorts } from '../../engine/runtime/workers/codec.ts';
import { decodeRecords, encodeRecords } from '../../engine/runtime/workers/columns.ts';
import { assertNoStatefulMethods } from '../../engine/runtime/workers/stateless.ts';

/** A structured clone, as postMessage makes it. */
const cross = <T>(value: T): T => deserialize(serialize(value)) as T;

const value = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme' }),
  fc.string({ unit: 'binary' }),
  fc.double(),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.constant({}),
  fc.date({ noInvalidDate: true }),
  fc.bigInt(),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.string(), { maxKeys: 3 }),
);
const key = fc.oneof(
  fc.constantFrom('client_ip', 'status', 'path', '__proto__', 'constructor', ''),
  fc.string({ maxLength: 6 }),
);
const record = fc.dictionary(key, value, { maxKeys: 8 });
const origin: fc.Arbitrary<Origin | undefined> = fc.option(
  fc.record(
    { source: fc.constantFrom('a', 'b'), file: fc.string(), offset: fc.nat(), line: fc.nat() },
    { requiredKeys: ['source'] },
  ),
  { nil: undefined },
);

function withOrigins(records: EtlRecord[], origins: (Origin | undefined)[]): EtlRecord[] {
  return records.map((r, i) => {
    const copy = { ...r };
    const o = origins[i % Math.max(1, origins.length)];
    if (o !== undefined) copy[ORIGIN] = o;
    return copy;
  });
}

describe('the column encoding', () => {
  it('gives back every record with the same fields, in the same order, with the same values', () => {
    fc.assert(
      fc.property(fc.array(record, { maxLength: 40 }), (records) => {
        const encoded = encodeRecords(records);
        const back = encoded ? decodeRecords(cross(encoded)) : cross(records);
        expect(back).toEqual(records);
        back.forEach((r, i) => {
          expect(Object.keys(r)).toEqual(Object.keys(records[i] as EtlRecord));
          expect(Object.getPrototypeOf(r)).toBe(Object.prototype);
        });
      }),
      { numRuns: 300 },
    );
  });

  it('keeps -0 and NaN, and gives each record its own empty object', () => {
    const back = decodeRecords(
      cross(
        encodeRecords([
          { a: -0, b: Number.NaN, c: {} },
          { a: 1, b: 2, c: {} },
        ]) as never,
      ),
    );
    expect(Object.is(back[0]?.a, -0)).toBe(true);
    expect(back[0]?.b).toBeNaN();
    expect(back[0]?.c).not.toBe(back[1]?.c);
  });

  it('declines a batch of too many shapes (it is cloned instead)', () => {
    expect(encodeRecords(Array.from({ length: 100 }, (_, i) => ({ [`f${i}`]: i })))).toBeUndefined();
  });
});

describe('batches and ports', () => {
  it('move lines and records in, with their origins, through a structured clone', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.array(fc.record({ message: fc.string({ unit: 'grapheme' }) }), { maxLength: 30 }),
          fc.array(fc.record({ message: fc.string({ unit: 'binary' }) }), { maxLength: 30 }),
          fc.array(record, { maxLength: 30 }),
        ),
        fc.array(origin, { maxLength: 5 }),
        (records, origins) => {
          const input = withOrigins(records as EtlRecord[], origins);
          const back = decodeBatch(cross(encodeBatch(input)));
          expect(back).toEqual(input);
          back.forEach((r, i) => {
            expect(r[ORIGIN]).toEqual((input[i] as EtlRecord)[ORIGIN]);
          });
        },
      ),
      { numRuns: 200 },
    );
  });

  it('give output records the very origin objects of the input, or a copy of one the stage made', () => {
    const input = withOrigins(
      [{ id: 1 }, { id: 2 }, { id: 3 }],
      [{ source: 's', line: 1 }, { source: 's', line: 2 }, undefined],
    );
    const own: Origin = { source: 'elsewhere', line: 9 };
    const ports = {
      default: [{ ...input[1], x: 1 }, { ...input[0], x: 2 }, { id: 4 }],
      dead_letter: [{ stage: 't', [ORIGIN]: own }],
    };
    const back = decodePorts(cross(encodePorts(ports, input)), input);
    expect(back.default?.[0]?.[ORIGIN]).toBe(input[1]?.[ORIGIN]);
    expect(back.default?.[1]?.[ORIGIN]).toBe(input[0]?.[ORIGIN]);
    expect(back.default?.[2]?.[ORIGIN]).toBeUndefined();
    expect(back.dead_letter?.[0]?.[ORIGIN]).toEqual(own);
    expect(back.default?.[0]).toEqual({ id: 2, x: 1, [ORIGIN]: input[1]?.[ORIGIN] });
  });
});

describe('stateless transforms', () => {
  it('refuses one with a method that keeps state', () => {
    expect(() => assertNoStatefulMethods('t', { process: () => ({}), flush: () => ({}) })).toThrow(
      'stage t runs on worker threads, where a stateless operator has no `flush`',
    );
  });
});
