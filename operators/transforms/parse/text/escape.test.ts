import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { escapeApache, escapeJson, escapeNginx } from './escape.ts';
import { unescapeRange } from './unescape.ts';

const decode = (s: string) => unescapeRange(s, 0, s.length);

describe('escaping', () => {
  it('writes what the servers write', () => {
    expect(escapeApache('a"b\\c\td\u0001é')).toBe('a\\"b\\\\c\\td\\x01\\xc3\\xa9');
    expect(escapeNginx('a"b\\c\td\u0001é')).toBe('a\\x22b\\x5Cc\\x09d\\x01\\xC3\\xA9');
    expect(escapeJson('a"b\\c\td\u0001é')).toBe('a\\"b\\\\c\\td\\u0001é');
  });

  it('is undone by the one unescaper, whichever server wrote it', () => {
    const text = fc.string({ unit: 'binary', maxLength: 40 });
    for (const escaper of [escapeApache, escapeNginx, escapeJson]) {
      fc.assert(
        fc.property(text, (s) => {
          expect(decode(escaper(s))).toBe(s);
        }),
      );
    }
  });

  it('decodes byte runs as UTF-8, keeps unknown escapes and replaces invalid bytes', () => {
    expect(decode('caf\\xC3\\xA9 \\xE2\\x82\\xAC')).toBe('café €');
    expect(decode('\\q \\x4 \\')).toBe('\\q \\x4 \\');
    expect(decode('\\xFF\\xFEok')).toBe('\ufffd\ufffdok');
    expect(decode('\\u00e9\\uD83D\\uDE00')).toBe('é😀');
    expect(unescapeRange('xx\\x41yy', 2, 6)).toBe('A');
  });
});
