/** The report's escaping: any text from a log shows as that text, and JSON in <script> cannot end the element. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { escapeHtml, formatValue, scriptJson } from '../../engine/report/html.ts';

/** What an HTML parser makes of escaped text: the five entities escapeHtml writes, decoded. */
function decode(html: string): string {
  return html.replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code)));
}

describe('report escaping', () => {
  it('escapes text so that it holds no markup and decodes back to itself', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => {
        const html = escapeHtml(text);
        expect(html).not.toMatch(/[<>"']/);
        expect(html.replaceAll(/&#\d+;/g, '')).not.toContain('&');
        expect(decode(html)).toBe(text);
      }),
    );
  });

  it('writes JSON that cannot close its <script> and parses back to the same value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = scriptJson(value);
        expect(text).not.toMatch(/[<>&\u2028\u2029]/);
        expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(value)));
      }),
    );
    expect(scriptJson(['</script><script>alert(1)</script>'])).toBe(
      '["\\u003c/script\\u003e\\u003cscript\\u003ealert(1)\\u003c/script\\u003e"]',
    );
  });

  it('formats numbers for reading', () => {
    expect(formatValue('count', 1234567)).toBe('1,234,567');
    expect(formatValue('bytes', 512)).toBe('512 B');
    expect(formatValue('bytes', 60_135_014)).toBe('57.3 MiB');
    expect(formatValue('ms', 12.345)).toBe('12.3 ms');
    expect(formatValue('percent', 81.74)).toBe('81.7 %');
    expect(formatValue('time', '2026-12-01T13:00:00.000Z')).toBe('2026-12-01 13:00');
    expect(formatValue('count', null)).toBe('\u2014');
  });
});
