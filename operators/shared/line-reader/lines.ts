/**
 * Line splitting shared by the file and stdin sources: complete lines out of a byte buffer, with the
 * byte offset and line number of each for the record's origin, a trailing `\r` stripped and over-long
 * lines cut. The hot loop is indexOf + one decode + two object literals per line.
 *
 * Bytes that are not UTF-8 decode as U+FFFD in `message`; such a line also carries its bytes, base64, in
 * `message_base64`, so nothing is lost. Only a line whose text holds U+FFFD is checked further: V8 answers
 * that search without scanning an ASCII-only string, so valid lines pay almost nothing (bench/lines.ts).
 */
import { isUtf8 } from 'node:buffer';
import { type EtlRecord, ORIGIN, type Origin } from '../../../engine/record.ts';

const NEWLINE = 0x0a;
const CR = 0x0d;

/** Size of the read buffer; a read never brings in more than this ahead of what was emitted. */
export const READ_BUFFER_BYTES = 256 * 1024;

/** A buffer big enough for the read size and for one maximal line with its newline. */
export function allocateReadBuffer(maxLineBytes: number): Buffer {
  return Buffer.allocUnsafe(Math.max(READ_BUFFER_BYTES, maxLineBytes + 2));
}

/** Where the reading of one stream stands: the first byte not yet turned into a line. */
export interface LineCursor {
  readonly source: string;
  /** Path (or `stdin`) put into each record's origin. */
  file: string;
  /** The origin's `input`: what stays the same when `file` is renamed (and changes when its content is replaced). */
  input: string | undefined;
  /** Stream offset (decompressed) of the first byte not yet consumed: the start of the next line. */
  offset: number;
  /** Lines consumed so far; the next line is number `line + 1`. */
  line: number;
  /** True while the rest of an over-long line is being discarded. */
  skipping: boolean;
}

export function newCursor(
  source: string,
  file: string,
  input?: string,
  offset = 0,
  line = 0,
  skipping = false,
): LineCursor {
  return { source, file, input, offset, line, skipping };
}

/** The batch being filled; `bytes` counts every consumed byte, newlines and cut tails included. */
export class Batch {
  readonly limit: number;
  records: EtlRecord[] = [];
  bytes = 0;
  /** Lines cut at max_line_bytes since the last take. */
  truncated = 0;
  /** When the first record of this batch was added (ms since epoch), for the idle flush. */
  since = 0;

  constructor(limit: number) {
    this.limit = Math.max(1, limit);
  }

  get full(): boolean {
    return this.records.length >= this.limit;
  }

  get empty(): boolean {
    return this.records.length === 0;
  }

  take(): { records: EtlRecord[]; bytes: number; truncated: number } {
    const taken = { records: this.records, bytes: this.bytes, truncated: this.truncated };
    this.records = [];
    this.bytes = 0;
    this.truncated = 0;
    this.since = 0;
    return taken;
  }
}

/**
 * Moves complete lines of `buf[start, end)` into `batch` until it is full; returns the new start.
 * What remains is a partial line (no newline yet), unless the batch filled up first. With `atEof`
 * a final line without newline is taken too. A line longer than `maxLineBytes` becomes one record
 * of its first `maxLineBytes` bytes marked `truncated`, with its size in `line_bytes`; the rest of it is
 * skipped up to its newline. So that the size is the whole line's, the cut waits for the newline while the
 * line fits in `buf`; a line that fills `buf` without one is cut then, its size a lower bound
 * (`line_bytes_at_least`).
 */
export function takeLines(
  cursor: LineCursor,
  buf: Buffer,
  start: number,
  end: number,
  batch: Batch,
  maxLineBytes: number,
  atEof: boolean,
): number {
  const records = batch.records;
  const before = records.length;
  const limit = batch.limit;
  const view = end === buf.length ? buf : buf.subarray(0, end);
  let pos = start;
  while (records.length < limit && pos < end) {
    const nl = view.indexOf(NEWLINE, pos);
    if (nl === -1) {
      const rest = end - pos;
      if (cursor.skipping) {
        consume(cursor, batch, rest, 0);
        pos = end;
      } else if (rest >= buf.length && rest > maxLineBytes) {
        // The line fills the buffer and its end is still unseen: cut it now, its size known only in part.
        pushTruncated(cursor, batch, buf, pos, maxLineBytes, rest, true);
        consume(cursor, batch, rest, 1);
        cursor.skipping = true;
        pos = end;
      } else if (atEof) {
        const lineEnd = stripCr(buf, pos, end);
        if (lineEnd - pos > maxLineBytes) {
          // Cut as it stands; should the file grow, what is appended to this line is skipped like its tail.
          pushTruncated(cursor, batch, buf, pos, maxLineBytes, lineEnd - pos, false);
          cursor.skipping = true;
        } else pushLine(cursor, batch, buf, pos, lineEnd);
        consume(cursor, batch, rest, 1);
        pos = end;
      }
      break;
    }
    const consumed = nl + 1 - pos;
    if (cursor.skipping) {
      cursor.skipping = false;
      consume(cursor, batch, consumed, 0);
    } else {
      const lineEnd = stripCr(buf, pos, nl);
      if (lineEnd - pos > maxLineBytes) pushTruncated(cursor, batch, buf, pos, maxLineBytes, lineEnd - pos, false);
      else pushLine(cursor, batch, buf, pos, lineEnd);
      consume(cursor, batch, consumed, 1);
    }
    pos = nl + 1;
  }
  if (before === 0 && records.length > 0) batch.since = Date.now();
  return pos;
}

function stripCr(buf: Buffer, start: number, end: number): number {
  return end > start && buf[end - 1] === CR ? end - 1 : end;
}

function consume(cursor: LineCursor, batch: Batch, bytes: number, lines: number): void {
  cursor.offset += bytes;
  cursor.line += lines;
  batch.bytes += bytes;
}

function pushLine(cursor: LineCursor, batch: Batch, buf: Buffer, start: number, end: number): void {
  const origin = originAt(cursor);
  const message = buf.toString('utf8', start, end);
  if (message.indexOf('\uFFFD') === -1 || isUtf8(buf.subarray(start, end))) {
    batch.records.push({ message, [ORIGIN]: origin });
  } else {
    batch.records.push({ message, message_base64: buf.toString('base64', start, end), [ORIGIN]: origin });
  }
}

/**
 * A line cut at `maxLineBytes`: `message` and `message_base64` hold its first bytes, `line_bytes` its size
 * (`atLeast`: a lower bound) and `max_line_bytes` the setting that cut it, so that what reads it can say so.
 */
function pushTruncated(
  cursor: LineCursor,
  batch: Batch,
  buf: Buffer,
  start: number,
  maxLineBytes: number,
  lineBytes: number,
  atLeast: boolean,
): void {
  // Cut on a character boundary: back off continuation bytes (10xxxxxx) so no half character is decoded.
  let cut = start + maxLineBytes;
  for (let back = 0; back < 3 && cut > start && ((buf[cut] as number) & 0xc0) === 0x80; back++) cut--;
  const origin = originAt(cursor);
  const record: EtlRecord = { message: buf.toString('utf8', start, cut), truncated: true };
  if (!isUtf8(buf.subarray(start, cut))) record.message_base64 = buf.toString('base64', start, cut);
  record.line_bytes = lineBytes;
  if (atLeast) record.line_bytes_at_least = true;
  record.max_line_bytes = maxLineBytes;
  record[ORIGIN] = origin;
  batch.records.push(record);
  batch.truncated++;
}

/** The origin of the line starting at the cursor: `input` only where the source sets one. */
function originAt(cursor: LineCursor): Origin {
  const line = cursor.line + 1;
  return cursor.input === undefined
    ? { source: cursor.source, file: cursor.file, offset: cursor.offset, line }
    : { source: cursor.source, file: cursor.file, input: cursor.input, offset: cursor.offset, line };
}
