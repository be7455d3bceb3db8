/**
 * Request bodies to records: text lines, NDJSON lines and JSON array elements. Pure functions (no I/O), so the
 * splitting and the dead-letter rules are tested on their own.
 */
import { isUtf8 } from 'node:buffer';
import { deadLetter, type EtlRecord, ORIGIN, type Origin } from '../../../engine/record.ts';

export type RecordsMode = 'raw' | 'json';

/** Where a request's records come from: the stage and the request's locator (`origin.file`). */
export interface RequestSource {
  readonly stage: string;
  /** `http:<request id>@<remote address>`. */
  readonly locator: string;
}

export interface Decoded {
  readonly records: EtlRecord[];
  readonly deadLetters: EtlRecord[];
  /** Bytes of the (gunzipped) body. */
  readonly bytes: number;
}

export function requestLocator(requestId: string, remoteAddress: string): string {
  return `http:${requestId}@${remoteAddress}`;
}

/**
 * Calls `each(start, end, line)` for every line of `body`: split on `\n`, a trailing `\r` dropped, a last line
 * without newline kept, nothing after a final newline.
 */
function forEachLine(body: Buffer, each: (start: number, end: number, line: number) => void): void {
  let start = 0;
  let line = 0;
  while (start < body.length) {
    let nl = body.indexOf(0x0a, start);
    if (nl === -1) nl = body.length;
    let end = nl;
    if (end > start && body[end - 1] === 0x0d) end--;
    each(start, end, ++line);
    start = nl + 1;
  }
}

function origin(at: RequestSource, line: number, offset?: number): Origin {
  return offset === undefined
    ? { source: at.stage, file: at.locator, line }
    : { source: at.stage, file: at.locator, offset, line };
}

/** text/plain: every line is `{ message }`, with `message_base64` when its bytes are not UTF-8 (as the file source). */
export function decodeLines(body: Buffer, at: RequestSource): Decoded {
  const records: EtlRecord[] = [];
  forEachLine(body, (start, end, line) => {
    const bytes = body.subarray(start, end);
    const record: EtlRecord = { message: bytes.toString('utf8') };
    if (!isUtf8(bytes)) record.message_base64 = bytes.toString('base64');
    record[ORIGIN] = origin(at, line, start);
    records.push(record);
  });
  return { records, deadLetters: [], bytes: body.length };
}

/** NDJSON: one JSON value per line; blank lines are skipped, a line that is not JSON is a dead letter. */
export function decodeNdjson(body: Buffer, mode: RecordsMode, at: RequestSource): Decoded {
  const records: EtlRecord[] = [];
  const deadLetters: EtlRecord[] = [];
  forEachLine(body, (start, end, line) => {
    const text = body.toString('utf8', start, end);
    if (text.trim() === '') return;
    const where = origin(at, line, start);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      deadLetters.push(rejected(text, where, at.stage, `not valid JSON: ${(error as Error).message}`));
      return;
    }
    const made = toRecord(value, mode, where);
    if (typeof made === 'string') deadLetters.push(rejected(text, where, at.stage, made));
    else records.push(made);
  });
  return { records, deadLetters, bytes: body.length };
}

/** application/json: an array of values (a single object or string counts as an array of one). */
export function decodeJson(body: unknown, bytes: number, mode: RecordsMode, at: RequestSource): Decoded {
  const values = Array.isArray(body) ? body : [body];
  const records: EtlRecord[] = [];
  const deadLetters: EtlRecord[] = [];
  for (let i = 0; i < values.length; i++) {
    const where = origin(at, i + 1);
    const made = toRecord(values[i], mode, where);
    if (typeof made === 'string')
      deadLetters.push(rejected(JSON.stringify(values[i]) ?? 'null', where, at.stage, made));
    else records.push(made);
  }
  return { records, deadLetters, bytes };
}

/** A record for one JSON value, or why there is none. */
function toRecord(value: unknown, mode: RecordsMode, where: Origin): EtlRecord | string {
  if (typeof value === 'string') return { message: value, [ORIGIN]: where };
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    if (mode === 'raw')
      return 'a JSON object where lines are expected (records: raw); set records: json to take objects';
    // A fresh object from JSON.parse: nobody else holds it, so the origin goes on it directly.
    const record = value as EtlRecord;
    record[ORIGIN] = where;
    return record;
  }
  return `a JSON ${value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value}, not an object or a string`;
}

/** A dead letter keeping the text as sent. */
function rejected(text: string, where: Origin, stage: string, reason: string): EtlRecord {
  return deadLetter({ message: text, [ORIGIN]: where }, stage, reason);
}
