import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { collectOutput, originOf, testContext } from '../../../test/support/source-output.ts';
import { createStdinSource, STDIN_FILE } from './stdin.ts';

interface Expected {
  message: string;
  message_base64?: string;
  truncated: boolean;
  line_bytes?: number;
  offset: number;
  line: number;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function isValidUtf8(bytes: Buffer): boolean {
  try {
    strictUtf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** The specification of line splitting, written the plain way (lines that fit the read buffer). */
function referenceLines(input: Buffer, maxLineBytes: number): Expected[] {
  const out: Expected[] = [];
  let start = 0;
  while (start < input.length) {
    let nl = input.indexOf(0x0a, start);
    const last = nl === -1;
    if (last) nl = input.length;
    let end = nl;
    if (end > start && input[end - 1] === 0x0d) end--;
    const size = end - start;
    let truncated = false;
    if (size > maxLineBytes) {
      truncated = true;
      end = start + maxLineBytes;
      // Back off at most three continuation bytes: a character is at most four bytes.
      for (let back = 0; back < 3 && end > start && ((input[end] as number) & 0xc0) === 0x80; back++) end--;
    }
    const bytes = input.subarray(start, end);
    out.push({
      message: bytes.toString('utf8'),
      ...(isValidUtf8(bytes) ? {} : { message_base64: bytes.toString('base64') }),
      truncated,
      ...(truncated ? { line_bytes: size } : {}),
      offset: start,
      line: out.length + 1,
    });
    start = nl + 1;
  }
  return out;
}

async function readAll(chunks: Buffer[], maxLineBytes: number, batchMaxRecords: number) {
  const input = new PassThrough();
  const ctx = testContext({ batchMaxRecords });
  const source = createStdinSource({ max_line_bytes: maxLineBytes }, ctx, input);
  const out = collectOutput();
  const running = source.run(out);
  for (const chunk of chunks) {
    input.write(chunk);
    // Let the source take this chunk on its own, so chunk boundaries reach the splitter.
    while (input.readableLength > 0) await new Promise((resolve) => setImmediate(resolve));
  }
  input.end();
  await running;
  await source.close?.();
  return { out, ctx };
}

function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    if (p > from) chunks.push(buf.subarray(from, p));
    from = Math.max(from, p);
  }
  if (from < buf.length) chunks.push(buf.subarray(from));
  return chunks;
}

describe('stdin source', () => {
  it('splits lines from a stream, with origin `stdin`, and ends at end of input without a position', async () => {
    const { out } = await readAll([Buffer.from('GET /a\r\nGET '), Buffer.from('/b\nlast')], 65536, 1000);
    expect(out.messages).toEqual(['GET /a', 'GET /b', 'last']);
    expect(out.records.map(originOf)).toEqual([
      { source: 'src', file: STDIN_FILE, offset: 0, line: 1 },
      { source: 'src', file: STDIN_FILE, offset: 8, line: 2 },
      { source: 'src', file: STDIN_FILE, offset: 15, line: 3 },
    ]);
    expect(out.batches.every((b) => b.position === undefined)).toBe(true);
    expect(out.batches.reduce((n, b) => n + (b.bytes ?? 0), 0)).toBe(19);
  });

  it('any split of the input into writes yields the lines of the reference splitter', async () => {
    // Valid text, a real U+FFFD, and bytes that are not UTF-8: a stray continuation byte, a lead byte
    // without its continuation, 0xFF, an overlong `/`, a surrogate, half of an emoji.
    const text = fc.constantFrom('a', 'bc', 'é', '😀', '\uFFFD', '\r', '\n', '\r\n', ' ', 'x'.repeat(20));
    const bad = fc.constantFrom([0x80], [0xc3], [0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf0, 0x9f, 0x98]);
    const piece = fc.oneof(
      { weight: 4, arbitrary: text.map((t) => Buffer.from(t)) },
      { weight: 1, arbitrary: bad.map((b) => Buffer.from(b)) },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(piece, { maxLength: 80 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.integer({ min: 16, max: 40 }),
        fc.integer({ min: 1, max: 5 }),
        async (pieces, cuts, maxLineBytes, batch) => {
          const input = Buffer.concat(pieces);
          const { out } = await readAll(splitAt(input, cuts), maxLineBytes, batch);
          const got = out.records.map((r) => ({
            message: r.message,
            ...(r.message_base64 === undefined ? {} : { message_base64: r.message_base64 }),
            truncated: r.truncated === true,
            ...(r.truncated === true ? { line_bytes: r.line_bytes } : {}),
            offset: originOf(r).offset,
            line: originOf(r).line,
          }));
          for (const r of out.records) {
            if (r.truncated === true) expect(r.max_line_bytes).toBe(maxLineBytes);
            expect(r.line_bytes_at_least).toBeUndefined();
          }
          expect(got).toEqual(referenceLines(input, maxLineBytes));
          expect(out.batches.every((b) => b.records.length <= batch)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('does not cut a line of exactly max_line_bytes whose CR and LF arrive in different writes', async () => {
    const line = 'x'.repeat(16);
    const { out } = await readAll([Buffer.from(`${line}\r`), Buffer.from('\nnext\n')], 16, 1000);
    expect(out.records.map((r) => [r.message, r.truncated === true])).toEqual([
      [line, false],
      ['next', false],
    ]);
  });

  it('sends a partial batch when the input pauses, without waiting for the batch to fill', async () => {
    const input = new PassThrough();
    const source = createStdinSource({ max_line_bytes: 65536 }, testContext({ batchMaxRecords: 1000 }), input);
    const out = collectOutput();
    const running = source.run(out);
    const wroteAt = Date.now();
    input.write('first\nsecond\n');
    await out.until((o) => o.messages.length === 2);
    expect(Date.now() - wroteAt).toBeLessThan(1000);
    input.end('third\n');
    await running;
    expect(out.messages).toEqual(['first', 'second', 'third']);
    expect(out.batches).toHaveLength(2);
  });

  it('returns promptly when stopping, even while the input stays open', async () => {
    const input = new PassThrough();
    const source = createStdinSource({ max_line_bytes: 65536 }, testContext(), input);
    const out = collectOutput();
    const running = source.run(out);
    input.write('one\n');
    await out.until((o) => o.messages.length === 1);
    out.controller.abort();
    await running;
    await source.close?.();
    expect(input.destroyed).toBe(true);
  });

  it('counts lines cut at max_line_bytes', async () => {
    const { out, ctx } = await readAll([Buffer.from(`${'y'.repeat(100)}\nok\n`)], 32, 1000);
    expect(out.messages).toEqual(['y'.repeat(32), 'ok']);
    expect(out.records[0]).toMatchObject({ truncated: true });
    expect(ctx.values.get('etl_source_truncated_lines_total')).toBe(1);
  });
});
