import { describe, expect, it } from 'vitest';
import { BinaryCopyBuffer } from './binary-buffer.ts';
import { countCopyRows } from './copy-rows.ts';

describe('countCopyRows', () => {
  it('counts COPY text rows by newline', () => {
    expect(countCopyRows(Buffer.from('a\tb\n\\N\tc\\nd\n'), 'text')).toBe(2);
  });

  it('counts COPY binary rows by their field lengths, NULLs and values holding 0x0a or 0xffff included', () => {
    const out = new BinaryCopyBuffer();
    for (let i = 0; i < 3; i++) {
      out.row(3);
      out.text('a\nb');
      out.nul();
      out.int2(-1);
    }
    const bytes = out.take();
    expect(countCopyRows(bytes, 'binary')).toBe(3);
    expect(() => countCopyRows(bytes.subarray(0, bytes.length - 1), 'binary')).toThrow(/ends inside a row/);
  });
});
