/**
 * Record → one row of COPY text format, validating every value against its column first: a value
 * PostgreSQL would reject would abort the whole load transaction, so it is caught here and the record is
 * dead-lettered on its own with the reason. U+0000, which text and jsonb cannot hold, is stored as `\x00`
 * (nul.ts). Rows are written straight into a CopyBuffer: one encoder per
 * sink, no string built per row.
 */
import { isIP } from 'node:net';
import type { EtlRecord } from '../../../engine/record.ts';
import type { Column } from './columns.ts';
import { CopyBuffer, unescapeCopyText } from './copy-buffer.ts';
import { restoreNul, restoreNulJson, storeNulJson } from './nul.ts';
import type { SqlType } from './schema.ts';
import { parseTimestamp } from './time.ts';

const T_TEXT = 0;
const T_INT = 1;
const T_FLOAT = 2;
const T_BOOL = 3;
const T_TIME = 4;
const T_INET = 5;
const T_JSON = 6;

const TYPE_CODES: Readonly<Record<SqlType, number>> = {
  text: T_TEXT,
  smallint: T_INT,
  integer: T_INT,
  bigint: T_INT,
  numeric: T_FLOAT,
  'double precision': T_FLOAT,
  boolean: T_BOOL,
  timestamptz: T_TIME,
  inet: T_INET,
  jsonb: T_JSON,
};

/**
 * JSON text that may need a second look: U+0000 (jsonb refuses `\u0000`; stored as `\x00`, nul.ts), a
 * backslash before `x00` or `x5c` (`\\x00` in JSON text), or an unpaired surrogate (jsonb refuses it;
 * JSON.stringify escapes those, and only those, as \udXXX). It may match where there is nothing to do.
 */
const JSON_HINT = /\\u(?:0000|d[89a-f])|\\\\x(?:00|5c)/;
/** An unpaired surrogate's escape, not preceded by an escaped backslash. */
const LONE_SURROGATE = /(?:^|[^\\])(?:\\\\)*\\ud[89a-f]/;
const TAB = 0x09;
const NEWLINE = 0x0a;
const MIN_TIME = -62135596800000; // 0001-01-01T00:00:00Z
const MAX_TIME = 253402300799999; // 9999-12-31T23:59:59.999Z

function decodeValue(code: number, text: string): unknown {
  switch (code) {
    case T_INT:
    case T_FLOAT: {
      const n = Number(text);
      return Number.isSafeInteger(n) || (code === T_FLOAT && Number.isFinite(n)) ? n : text;
    }
    case T_BOOL:
      return text === 't';
    case T_JSON:
      try {
        return JSON.parse(restoreNulJson(text)) as unknown;
      } catch {
        return text;
      }
    case T_TEXT:
      return restoreNul(text);
    case T_TIME:
      return fromServerTime(text);
    default:
      return text;
  }
}

/**
 * The text PostgreSQL parses fastest for the ISO form JavaScript writes (`toISOString`, what `parse` emits):
 * `2024-05-01T12:00:00.000Z` goes as `2024-05-01 12:00:00+00`, `…:00.250Z` as `2024-05-01 12:00:00.250+00`.
 * The server reads fractional seconds with strtod, which in the embedded database's WebAssembly does its
 * arithmetic in software 128-bit floats, and its `T` and `Z` paths cost more than a space and `+00`.
 * Measured with PGlite 0.5.17, COPY of 200k values into a one-column table, CPU per 10k values over the
 * same COPY into a text column (loaded): 10.7 ms for `…:00.000Z`, 5.4 ms for `… 12:00:00+00`. The same
 * instant either way; any other form goes as it came.
 */
function toServerTime(iso: string): string {
  if (iso.length !== 24 || iso.charCodeAt(10) !== 0x54 || iso.charCodeAt(19) !== 0x2e || iso.charCodeAt(23) !== 0x5a) {
    return iso;
  }
  const day = iso.slice(0, 10);
  const time = iso.slice(11, 19);
  const millis = iso.slice(20, 23);
  return millis === '000' ? `${day} ${time}+00` : `${day} ${time}.${millis}+00`;
}

/** `toServerTime` undone: a stored row decodes to the record it came from. */
function fromServerTime(text: string): string {
  if (text.length === 22 && text.charCodeAt(10) === 0x20 && text.endsWith('+00')) {
    return `${text.slice(0, 10)}T${text.slice(11, 19)}.000Z`;
  }
  if (text.length === 26 && text.charCodeAt(10) === 0x20 && text.charCodeAt(19) === 0x2e && text.endsWith('+00')) {
    return `${text.slice(0, 10)}T${text.slice(11, 23)}Z`;
  }
  return text;
}

function isEmptyPlainObject(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== Object.prototype) return false;
  for (const _ in value) return false;
  return true;
}

type CompiledEncoder = (record: EtlRecord, out: CopyBuffer, encoder: RowEncoder) => boolean;

/**
 * The row encoder for one column layout, generated once: fields read by name (monomorphic property
 * loads instead of a keyed load per column) and the commonest values (a string for text, a small integer
 * in range) written inline; everything else goes through `RowEncoder.value`, the one place that
 * validates. Names reach the code only as JSON string literals.
 */
function compileEncoder(columns: readonly Column[], codes: Uint8Array, extraIndex: number): CompiledEncoder {
  const lines: string[] = ['const start = out.length;', 'encoder.time = NaN;', 'let v;'];
  const fail = '{ out.truncate(start); return false; }';
  columns.forEach((column, i) => {
    if (i > 0) lines.push('out.byte(9);');
    lines.push(`v = record[${JSON.stringify(column.name)}];`);
    if (i === extraIndex) lines.push('v = encoder.extraValue(record, v);');
    const missing = column.required ? `{ encoder.missing(${i}); ${fail} }` : 'out.nul();';
    let common = '';
    if (codes[i] === T_TEXT) common = `if (typeof v === 'string') out.text(v); else `;
    else if (codes[i] === T_INT) {
      const lo = Math.max(column.min ?? -0x80000000, -0x80000000);
      const hi = Math.min(column.max ?? 0x7fffffff, 0x7fffffff);
      if (column.minExclusive !== true && column.maxExclusive !== true) {
        common = `if (typeof v === 'number' && (v | 0) === v && v >= ${lo} && v <= ${hi}) out.integer(v); else `;
      }
    }
    lines.push(`if (v === undefined || v === null) ${missing} else ${common}if (!encoder.value(out, ${i}, v)) ${fail}`);
  });
  lines.push('out.byte(10);', 'return true;');
  return new Function('record', 'out', 'encoder', lines.join('\n')) as CompiledEncoder;
}

function show(value: unknown): string {
  let text: string;
  try {
    text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  } catch {
    text = Object.prototype.toString.call(value); // an object without a prototype has no toString
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

export class RowEncoder {
  readonly columns: readonly Column[];
  /** Why the last `encode` returned undefined. */
  reason = '';
  /** Event time (epoch ms) of the last encoded row; NaN when the time column is null. */
  time = Number.NaN;
  private readonly codes: Uint8Array;
  private readonly names: readonly string[];
  private readonly known: Set<string>;
  private readonly extraIndex: number;
  private readonly timeIndex: number;
  private readonly compiled: CompiledEncoder;
  private lastTimeText = '';
  private lastTimeMs = Number.NaN;
  /** `lastTimeText` as it is sent (toServerTime). */
  private lastTimeSent = '';

  constructor(columns: readonly Column[], extraColumn: string, timeColumn: string | undefined) {
    this.columns = columns;
    this.codes = Uint8Array.from(columns, (c) => TYPE_CODES[c.type]);
    this.names = columns.map((c) => c.name);
    this.known = new Set(this.names);
    this.extraIndex = columns.findIndex((c) => c.name === extraColumn);
    this.timeIndex = timeColumn === undefined ? -1 : columns.findIndex((c) => c.name === timeColumn);
    this.compiled = compileEncoder(columns, this.codes, this.extraIndex);
  }

  /** Encodes column `index` of a row (the compiled encoder's path for all but the commonest values). */
  value(out: CopyBuffer, index: number, value: unknown): boolean {
    return this.encodeValue(
      out,
      this.columns[index] as Column,
      this.codes[index] as number,
      value,
      index === this.timeIndex,
    );
  }

  /** Refuses a row for a missing required value. */
  missing(index: number): false {
    this.reason = `${(this.columns[index] as Column).name}: missing required value`;
    return false;
  }

  /**
   * Appends the COPY row (with its newline) for `record` to `out`; false, with `out` as it was and
   * `reason` set, when a value is refused.
   */
  encodeInto(record: EtlRecord, out: CopyBuffer): boolean {
    return this.compiled(record, out, this);
  }

  /** `encodeInto` as a loop over the columns: what the compiled encoder must match, byte for byte. */
  encodeGeneric(record: EtlRecord, out: CopyBuffer): boolean {
    const columns = this.columns;
    const codes = this.codes;
    const rowStart = out.length;
    this.time = Number.NaN;
    for (let i = 0; i < columns.length; i++) {
      const column = columns[i] as Column;
      let value: unknown = record[column.name];
      if (i === this.extraIndex) value = this.extraValue(record, value);
      if (i > 0) out.byte(TAB);
      let ok: boolean;
      if (value === undefined || value === null) {
        ok = column.required ? this.missing(i) : true;
        if (ok) out.nul();
      } else ok = this.encodeValue(out, column, codes[i] as number, value, i === this.timeIndex);
      if (!ok) {
        out.truncate(rowStart);
        return false;
      }
    }
    out.byte(NEWLINE);
    return true;
  }

  /** The COPY line (with its newline) for `record`, or undefined with `reason` set. */
  encode(record: EtlRecord): string | undefined {
    const out = new CopyBuffer(1024);
    return this.encodeInto(record, out) ? out.toString() : undefined;
  }

  /**
   * The record a COPY line stands for: for dead letters of rows PostgreSQL refused after their batch was
   * acknowledged (the original record is no longer kept). Fields of the extra column come back as fields of
   * their own; NULLs are left out; U+0000 comes back from its stored `\x00` (nul.ts).
   */
  decode(line: string): EtlRecord {
    const record: EtlRecord = {};
    const values = (line.endsWith('\n') ? line.slice(0, -1) : line).split('\t');
    for (let i = 0; i < this.columns.length && i < values.length; i++) {
      const text = values[i] as string;
      if (text === '\\N') continue;
      const column = this.columns[i] as Column;
      const value = decodeValue(this.codes[i] as number, unescapeCopyText(text));
      if (i === this.extraIndex && value !== null && typeof value === 'object' && !Array.isArray(value)) {
        Object.assign(record, value);
      } else record[column.name] = value;
    }
    return record;
  }

  /** The extra column holds its own field plus every field that has no column. */
  extraValue(record: EtlRecord, own: unknown): unknown {
    let merged: Record<string, unknown> | undefined;
    const names = this.names;
    let next = 0;
    for (const key in record) {
      // Records of one operator list their fields in one order, mostly the columns' order: comparing
      // with the expected name is cheaper than a set lookup.
      if (key === names[next]) {
        next++;
        continue;
      }
      if (this.known.has(key)) continue;
      const value = record[key];
      if (value === undefined) continue;
      merged ??= own !== null && typeof own === 'object' && !Array.isArray(own) ? { ...own } : {};
      merged[key] = value;
    }
    return merged ?? own;
  }

  private encodeValue(out: CopyBuffer, column: Column, code: number, value: unknown, isTime: boolean): boolean {
    switch (code) {
      case T_TEXT: {
        const text =
          typeof value === 'string'
            ? value
            : typeof value === 'number' || typeof value === 'boolean'
              ? String(value)
              : undefined;
        if (text === undefined) return this.reject(column, value, 'expected text');
        out.text(text);
        return true;
      }
      case T_INT: {
        if (typeof value === 'bigint') {
          if (column.type === 'bigint' && value >= -9223372036854775808n && value <= 9223372036854775807n) {
            if (
              (column.min === undefined || value >= BigInt(column.min)) &&
              (column.max === undefined || value <= BigInt(column.max))
            ) {
              out.ascii(value.toString());
              return true;
            }
          }
          return this.reject(column, value, this.rangeText(column));
        }
        if (typeof value !== 'number' || !Number.isInteger(value))
          return this.reject(column, value, 'expected an integer');
        if (!this.inRange(column, value)) return this.reject(column, value, this.rangeText(column));
        out.integer(value);
        return true;
      }
      case T_FLOAT:
        if (typeof value !== 'number' || !Number.isFinite(value))
          return this.reject(column, value, 'expected a finite number');
        if (!this.inRange(column, value)) return this.reject(column, value, this.rangeText(column));
        out.ascii(String(value));
        return true;
      case T_BOOL:
        if (typeof value !== 'boolean') return this.reject(column, value, 'expected a boolean');
        out.byte(value ? 0x74 : 0x66); // t, f
        return true;
      case T_TIME:
        return this.encodeTime(out, column, value, isTime);
      case T_INET:
        if (typeof value !== 'string' || value.includes('%') || isIP(value) === 0) {
          return this.reject(column, value, 'invalid IP address');
        }
        out.ascii(value);
        return true;
      default:
        return this.encodeJson(out, column, value);
    }
  }

  private encodeTime(out: CopyBuffer, column: Column, value: unknown, isTime: boolean): boolean {
    let ms: number;
    if (typeof value === 'string') {
      // Rows of a log come in time order, many to the second: the last text parsed is often the next.
      if (value === this.lastTimeText) ms = this.lastTimeMs;
      else {
        ms = parseTimestamp(value);
        if (Number.isNaN(ms))
          return this.reject(column, value, 'invalid or out-of-range timestamp (RFC 3339, years 0001-9999)');
        this.lastTimeText = value;
        this.lastTimeMs = ms;
        this.lastTimeSent = toServerTime(value);
      }
      out.ascii(this.lastTimeSent);
    } else {
      ms = value instanceof Date ? value.getTime() : typeof value === 'number' ? value : Number.NaN;
      if (!(ms >= MIN_TIME && ms <= MAX_TIME)) return this.reject(column, value, 'timestamp out of range');
      out.ascii(toServerTime(new Date(ms).toISOString()));
    }
    if (isTime) this.time = ms;
    return true;
  }

  private encodeJson(out: CopyBuffer, column: Column, value: unknown): boolean {
    // Parsed access records carry an empty `extra`: the common case, without JSON.stringify.
    if (isEmptyPlainObject(value)) {
      out.ascii('{}');
      return true;
    }
    let json: string | undefined;
    try {
      json = JSON.stringify(value);
    } catch (error) {
      return this.reject(column, '[value]', `not JSON-serialisable (${(error as Error).message})`);
    }
    if (json === undefined) return this.reject(column, value, 'not JSON-serialisable');
    if (JSON_HINT.test(json)) {
      json = storeNulJson(json);
      if (LONE_SURROGATE.test(json)) return this.reject(column, '[value]', 'contains an unpaired surrogate');
    }
    out.json(json);
    return true;
  }

  private inRange(column: Column, value: number): boolean {
    const { min, max } = column;
    if (min !== undefined && (value < min || (column.minExclusive === true && value === min))) return false;
    if (max !== undefined && (value > max || (column.maxExclusive === true && value === max))) return false;
    return true;
  }

  private rangeText(column: Column): string {
    const lo = column.min === undefined ? '-inf' : String(column.min);
    const hi = column.max === undefined ? 'inf' : String(column.max);
    return `out of range ${column.minExclusive ? '(' : '['}${lo}, ${hi}${column.maxExclusive ? ')' : ']'} for ${column.type}`;
  }

  private reject(column: Column, value: unknown, why: string): false {
    this.reason = `${column.name}: ${show(value)} ${why}`;
    return false;
  }
}
