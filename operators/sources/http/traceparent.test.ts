import { describe, expect, it } from 'vitest';
import { parseTraceparent } from './traceparent.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('parseTraceparent', () => {
  it('keeps a valid header', () => {
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-01`)).toBe(`00-${TRACE}-${SPAN}-01`);
    expect(parseTraceparent(` 00-${TRACE}-${SPAN}-00 `)).toBe(`00-${TRACE}-${SPAN}-00`);
  });

  it('reads a later version as version 00, dropping the fields it adds', () => {
    expect(parseTraceparent(`01-${TRACE}-${SPAN}-01-extra`)).toBe(`00-${TRACE}-${SPAN}-01`);
  });

  it('ignores what the specification calls invalid', () => {
    for (const header of [
      undefined,
      ['a', 'b'],
      '',
      `ff-${TRACE}-${SPAN}-01`,
      `00-${TRACE}-${SPAN}-01-extra`,
      `00-${'0'.repeat(32)}-${SPAN}-01`,
      `00-${TRACE}-${'0'.repeat(16)}-01`,
      `00-${TRACE.toUpperCase()}-${SPAN}-01`,
      `00-${TRACE.slice(1)}-${SPAN}-01`,
      `00-${TRACE}-${SPAN}`,
    ]) {
      expect(parseTraceparent(header)).toBeUndefined();
    }
  });
});
