import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ORIGIN } from '../../../engine/record.ts';
import { decodeJson, decodeLines, decodeNdjson } from './body.ts';

const at = { stage: 'pushed', locator: 'http:r1@127.0.0.1' };

describe('request bodies', () => {
  it('text: lines joined back with their endings give the body; offsets point at each line', () => {
    const text = fc.array(fc.string({ unit: fc.constantFrom('a', 'é', ' ', '"', '\r') }), { maxLength: 30 });
    fc.assert(
      fc.property(text, fc.boolean(), fc.boolean(), (lines, crlf, finalNewline) => {
        const clean = lines.map((l) => l.replaceAll('\r', ''));
        const body = Buffer.from(clean.join(crlf ? '\r\n' : '\n') + (finalNewline && clean.length > 0 ? '\n' : ''));
        const { records, deadLetters, bytes } = decodeLines(body, at);
        // The reference: split on \n, a final newline ends the last line, a \r before \n is dropped.
        const text = body.toString('utf8');
        const expected =
          text === ''
            ? []
            : (text.endsWith('\n') ? text.slice(0, -1) : text).split('\n').map((l) => l.replace(/\r$/, ''));
        expect(records.map((r) => r.message)).toEqual(expected);
        expect(deadLetters).toEqual([]);
        expect(bytes).toBe(body.length);
        for (const [i, r] of records.entries()) {
          const origin = r[ORIGIN];
          expect(origin?.line).toBe(i + 1);
          expect(
            body.toString('utf8', origin?.offset, (origin?.offset ?? 0) + Buffer.byteLength(String(r.message))),
          ).toBe(r.message);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('NDJSON and JSON arrays: every value is a record or a dead letter, in order, with records: json', () => {
    const value = fc.oneof(
      fc.string(),
      fc.dictionary(fc.string({ minLength: 1, maxLength: 5 }), fc.oneof(fc.string(), fc.integer(), fc.boolean())),
      fc.integer(),
      fc.constant(null),
      fc.array(fc.integer(), { maxLength: 3 }),
    );
    fc.assert(
      fc.property(fc.array(value, { maxLength: 30 }), (values) => {
        const kinds = values.map((v) =>
          typeof v === 'string'
            ? 'message'
            : v !== null && typeof v === 'object' && !Array.isArray(v)
              ? 'object'
              : 'dead',
        );
        const expectedRecords = values
          .filter((_, i) => kinds[i] !== 'dead')
          .map((v) => (typeof v === 'string' ? { message: v } : v));
        const ndjson = decodeNdjson(Buffer.from(values.map((v) => JSON.stringify(v)).join('\n')), 'json', at);
        const array = decodeJson(structuredClone(values), 0, 'json', at);
        for (const decoded of [ndjson, array]) {
          expect(decoded.records.map((r) => Object.fromEntries(Object.entries(r)))).toEqual(expectedRecords);
          expect(decoded.deadLetters.length).toBe(kinds.filter((k) => k === 'dead').length);
          const lines = [...decoded.records, ...decoded.deadLetters]
            .map((r) => r[ORIGIN]?.line)
            .sort((a, b) => (a ?? 0) - (b ?? 0));
          expect(lines).toEqual(values.map((_, i) => i + 1));
        }
      }),
      { numRuns: 200 },
    );
  });

  it('NDJSON with records: raw takes strings only; a line that is not JSON keeps its text', () => {
    const body = Buffer.from('"a"\n{"b":1}\nnot json\n  \n"c"');
    const { records, deadLetters } = decodeNdjson(body, 'raw', at);
    expect(records.map((r) => r.message)).toEqual(['a', 'c']);
    expect(deadLetters.map((d) => [d.raw, d.stage, (d.origin as { line: number }).line])).toEqual([
      ['{"b":1}', 'pushed', 2],
      ['not json', 'pushed', 3],
    ]);
  });
});
