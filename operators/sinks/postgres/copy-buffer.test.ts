import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CopyBuffer, escapeCopyText, unescapeCopyText } from './copy-buffer.ts';
import { restoreNul, storeNul } from './nul.ts';

describe('CopyBuffer', () => {
  it('writes any text as the UTF-8 of its COPY escaping, short or long, NUL included', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'binary', maxLength: 160, size: 'max' }), { maxLength: 8 }), (values) => {
        // A small start size, so that growing is exercised too.
        const out = new CopyBuffer(8);
        for (const value of values) out.text(value);
        expect(out.take()).toEqual(Buffer.from(values.map(escapeCopyText).join(''), 'utf8'));
        expect(out.length).toBe(0);
      }),
      { numRuns: 2000 },
    );
  });

  it('stores U+0000 as \\x00 and a backslash that would read as such an escape as \\x5c, recoverably', () => {
    const out = new CopyBuffer(8);
    out.text('a\0b');
    out.byte(9);
    out.text('\\x00 \\x5c \\x5C \\x0 \\');
    expect(out.toString()).toBe('a\\\\x00b\t\\\\x5cx00 \\\\x5cx5c \\\\x5C \\\\x0 \\\\');
    // Short and long values, and characters beyond ASCII, on both paths; most of them made of the
    // characters of the escapes.
    const tricky = fc.string({
      unit: fc.constantFrom('\0', '\\', 'x', '0', '5', 'c', 'C', 'é', '\t', 'a'),
      maxLength: 160,
      size: 'max',
    });
    fc.assert(
      fc.property(fc.oneof(tricky, fc.string({ unit: 'binary', maxLength: 160, size: 'max' })), (value) => {
        const buffer = new CopyBuffer(8);
        buffer.text(value);
        const stored = unescapeCopyText(buffer.toString());
        expect(stored).not.toContain('\0');
        expect(stored).toBe(storeNul(value));
        expect(restoreNul(stored)).toBe(value);
      }),
      { numRuns: 3000 },
    );
  });

  it('writes JSON text with its backslashes doubled, and nothing else changed', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const json = JSON.stringify(value);
        const out = new CopyBuffer(8);
        out.json(json);
        expect(unescapeCopyText(out.toString())).toBe(json);
      }),
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
          // Repeated: values on both sides of the length up to which a loop copies them.
          out.ascii(String(n * 2).repeat(n & 7));
          out.byte(0x0a);
        }
        expect(out.toString()).toBe(numbers.map((n) => `${n}\t${String(n * 2).repeat(n & 7)}\n`).join(''));
      }),
    );
  });
});
