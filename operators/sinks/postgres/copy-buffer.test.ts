import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CopyBuffer, escapeCopyText } from './copy-buffer.ts';

describe('CopyBuffer', () => {
  it('writes any text as the UTF-8 of its COPY escaping, short or long, and refuses NUL', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'binary', maxLength: 40 }), { maxLength: 8 }), (values) => {
        // A small start size, so that growing is exercised too.
        const out = new CopyBuffer(8);
        const expected: Buffer[] = [];
        for (const value of values) {
          const before = out.length;
          const escaped = escapeCopyText(value);
          expect(out.text(value)).toBe(escaped !== undefined);
          if (escaped === undefined) expect(out.length).toBe(before);
          else expected.push(Buffer.from(escaped, 'utf8'));
        }
        expect(out.take()).toEqual(Buffer.concat(expected));
        expect(out.length).toBe(0);
      }),
      { numRuns: 2000 },
    );
  });

  it('hands out batches that later writes never change, across slabs', () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.string({ maxLength: 30 }), { maxLength: 6 }), { maxLength: 12 }), (batches) => {
        const out = new CopyBuffer(64);
        const taken: Array<[Buffer, string]> = [];
        for (const batch of batches) {
          for (const value of batch) out.ascii(value.replace(/[^\x20-\x7e]/g, '?'));
          const expected = out.toString();
          taken.push([out.take(), expected]);
        }
        for (const [bytes, expected] of taken) expect(bytes.toString('utf8')).toBe(expected);
      }),
    );
  });

  it('writes integers and ASCII as their decimal text', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.integer(), fc.maxSafeInteger(), fc.constant(0))), (numbers) => {
        const out = new CopyBuffer(4);
        for (const n of numbers) {
          out.integer(n);
          out.byte(0x09);
          out.ascii(String(n * 2));
          out.byte(0x0a);
        }
        expect(out.toString()).toBe(numbers.map((n) => `${n}\t${n * 2}\n`).join(''));
      }),
    );
  });
});
