import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fieldGetter } from './fields.ts';

describe('fieldGetter', () => {
  it('reads the field literally named so, whatever the name, as record[name] does', () => {
    fc.assert(
      fc.property(fc.string(), fc.dictionary(fc.string(), fc.anything()), (name, fields) => {
        const record = { ...fields };
        expect(fieldGetter(name)(record)).toBe(record[name]);
        record[name] = 'set';
        expect(fieldGetter(name)(record)).toBe(record[name]);
      }),
      { numRuns: 500 },
    );
    for (const name of ['a"b', "it's", 'x.y', '\\', '\u2028', '$', '`'])
      expect(fieldGetter(name)({ [name]: 1, x: { y: 2 } })).toBe(1);
  });
});
