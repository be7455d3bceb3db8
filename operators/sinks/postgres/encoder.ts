/**
 * Record → one row of COPY text or binary format, validating every value against its column first: a
 * value PostgreSQL would reject would abort the whole load transaction (and a binary COPY cannot even
 * say which row), so it is caught here and the record is dead-lettered on its own with the reason; both
 * formats refuse exactly the same values. U+0000, which text and jsonb cannot hold, is stored as `\x00`
 * (nul.ts). Rows are written straight into a CopyBuffer or BinaryCopyBuffer: one encoder per sink, no
 * string built per row.
 */
import { isIP } from 'node:net';
import type { EtlRecord } from '../../../engine/record.ts';
import { BinaryCopyBuffer, binaryFields, readInet, readNumeric, readTimestamp } from './binary-buffer.ts';
import type { Column } from './columns.ts';
import { CopyBuffer, unescapeCopyText } from './copy-buffer.ts';
import type { CopyFormat } from './driver.ts';
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

/** The value a field of COPY binary stands for, as `decodeValue` gives it for the text of the same value. */
function decodeBinaryValue(type: SqlType, field: Buffer): unknown {
  switch (type) {
    case 'smallint':
      return field.readInt16BE(0);
    case 'integer':
      return field.readInt32BE(0);
    case 'bigint': {
      const n = field.readBigInt64BE(0);
      return Number.isSafeInteger(Number(n)) ? Number(n) : n.toString();
    }
    case 'double precision':
      return field.readDoubleBE(0);
    case 'numeric': {
      const text = readNumeric(field);
      return Number.isFinite(Number(text)) ? Number(text) : text;
    }
    case 'boolean':
      return field[0] === 1;
    case 'timestamptz': {
      // The instant in UTC, RFC 3339 with the fraction it needs (the text it was written as is not sent).
      const { ms, micros } = readTimestamp(field);
      const iso = new Date(ms).toISOString();
      const fraction = `${iso.slice(20, 23)}${String(micros).padStart(3, '0')}`.replace(/0+$/, '');
      return `${iso.slice(0, 19)}${fraction === '' ? '' : `.${fraction}`}Z`;
    }
    case 'inet':
      return readInet(field);
    case 'jsonb':
      return decodeValue(T_JSON, field.toString('utf8', 1));
    default:
      return decodeValue(T_TEXT, field.toString('utf8'));
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

/** The buffer rows of a format are written into. */
export type RowBuffer = CopyBuffer | BinaryCopyBuffer;

type CompiledEncoder = (record: EtlRecord, out: RowBuffer, encoder: RowEncoder) => boolean;

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

const BINARY_INT_WRITER: Partial<Record<SqlType, string>> = { smallint: 'int2', integer: 'int4', bigint: 'int8' };

/** `compileEncoder` for COPY binary: a field count, then each field's length and value, no separators. */
function compileBinaryEncoder(columns: readonly Column[], codes: Uint8Array, extraIndex: number): CompiledEncoder {
  const lines: string[] = ['const start = out.length;', 'encoder.time = NaN;', 'let v;', `out.row(${columns.length});`];
  const fail = '{ out.truncate(start); return false; }';
  columns.forEach((column, i) => {
    lines.push(`v = record[${JSON.stringify(column.name)}];`);
    if (i === extraIndex) lines.push('v = encoder.extraValue(record, v);');
    const missing = column.required ? `{ encoder.missing(${i}); ${fail} }` : 'out.nul();';
    let common = '';
    if (codes[i] === T_TEXT) common = `if (typeof v === 'string') out.text(v); else `;
    else if (codes[i] === T_INT) {
      const lo = Math.max(column.min ?? -0x80000000, -0x80000000);
      const hi = Math.min(column.max ?? 0x7fffffff, 0x7fffffff);
      const writer = BINARY_INT_WRITER[column.type];
      if (writer !== undefined && column.minExclusive !== true && column.maxExclusive !== true) {
        common = `if (typeof v === 'number' && (v | 0) === v && v >= ${lo} && v <= ${hi}) out.${writer}(v); else `;
      }
    }
    lines.push(
      `if (v === undefined || v === null) ${missing} else ${common}if (!encoder.binaryValue(out, ${i}, v)) ${fail}`,
    );
  });
  lines.push('return true;');
  return new Function('record', 'out', 'encoder', lines.join('\n')) as CompiledEncoder;
}

/** Text a text column stores for `value`, or undefined when it takes no such value. */
function textOf(value: unknown): string | undefined {
  return typeof value === 'string'
    ? value
    : typeof value === 'number' || typeof value === 'boolean'
      ? String(value)
      : undefined;
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
  readonly format: CopyFormat;
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
  /** Microseconds within the millisecond of the last timestamp parsed (binary COPY sends them). */
  private readonly timeParts = { micros: 0 };
  private lastTimeMicros = 0;
  /** The last timestamp string sent in text, and the text it was sent as (toServerTime). */
  private lastTimeSource = '';
  private lastTimeSent = '';

  constructor(
    columns: readonly Column[],
    extraColumn: string,
    timeColumn: string | undefined,
    format: CopyFormat = 'text',
  ) {
    this.columns = columns;
    this.format = format;
    this.codes = Uint8Array.from(columns, (c) => TYPE_CODES[c.type]);
    this.names = columns.map((c) => c.name);
    this.known = new Set(this.names);
    this.extraIndex = columns.findIndex((c) => c.name === extraColumn);
    this.timeIndex = timeColumn === undefined ? -1 : columns.findIndex((c) => c.name === timeColumn);
    this.compiled = (format === 'binary' ? compileBinaryEncoder : compileEncoder)(columns, this.codes, this.extraIndex);
  }

  /** A buffer for rows of this encoder's format. */
  buffer(): RowBuffer {
    return this.format === 'binary' ? new BinaryCopyBuffer() : new CopyBuffer();
  }

  /** `value` for COPY binary. */
  binaryValue(out: BinaryCopyBuffer, index: number, value: unknown): boolean {
    const column = this.columns[index] as Column;
    switch (this.codes[index]) {
      case T_TEXT: {
        const text = textOf(value);
        if (text === undefined) return this.reject(column, value, 'expected text');
        out.text(text);
        return true;
      }
      case T_INT:
        if (typeof value === 'bigint') {
          if (!this.bigintFits(column, value)) return false;
          out.int8Big(value);
          return true;
        }
        if (!this.isInteger(column, value)) return false;
        if (column.type === 'smallint') out.int2(value);
        else if (column.type === 'integer') out.int4(value);
        else out.int8(value);
        return true;
      case T_FLOAT:
        if (!this.isFiniteInRange(column, value)) return false;
        if (column.type === 'numeric') out.numeric(String(value));
        else out.float8(value);
        return true;
      case T_BOOL:
        if (typeof value !== 'boolean') return this.reject(column, value, 'expected a boolean');
        out.bool(value);
        return true;
      case T_TIME: {
        const ms = this.timeOf(column, value);
        if (Number.isNaN(ms)) return false;
        out.timestamp(ms, typeof value === 'string' ? this.lastTimeMicros : 0);
        if (index === this.timeIndex) this.time = ms;
        return true;
      }
      case T_INET: {
        const family = this.ipFamily(column, value);
        if (family === 0) return false;
        out.inet(value as string, family);
        return true;
      }
      default: {
        const json = this.jsonOf(column, value);
        if (json === undefined) return false;
        out.jsonb(json);
        return true;
      }
    }
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
  encodeInto(record: EtlRecord, out: RowBuffer): boolean {
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

  /** The COPY line (with its newline) for `record`, or undefined with `reason` set (text format). */
  encode(record: EtlRecord): string | undefined {
    const out = new CopyBuffer(1024);
    return this.encodeInto(record, out) ? out.toString() : undefined;
  }

  /** The record a row of this encoder's format stands for (`decode`, `decodeBinary`). */
  decodeRow(row: Buffer): EtlRecord {
    return this.format === 'binary' ? this.decodeBinary(row) : this.decode(row.toString('utf8'));
  }

  /** `decode` for a row of COPY binary. */
  decodeBinary(row: Buffer): EtlRecord {
    const record: EtlRecord = {};
    const fields = binaryFields(row);
    for (let i = 0; i < this.columns.length && i < fields.length; i++) {
      const field = fields[i];
      if (field === undefined) continue;
      const column = this.columns[i] as Column;
      const value = decodeBinaryValue(column.type, field);
      if (i === this.extraIndex && value !== null && typeof value === 'object' && !Array.isArray(value)) {
        Object.assign(record, value);
      } else record[column.name] = value;
    }
    return record;
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
        const text = textOf(value);
        if (text === undefined) return this.reject(column, value, 'expected text');
        out.text(text);
        return true;
      }
      case T_INT:
        if (typeof value === 'bigint') {
          if (!this.bigintFits(column, value)) return false;
          out.ascii(value.toString());
          return true;
        }
        if (!this.isInteger(column, value)) return false;
        out.integer(value);
        return true;
      case T_FLOAT:
        if (!this.isFiniteInRange(column, value)) return false;
        out.ascii(String(value));
        return true;
      case T_BOOL:
        if (typeof value !== 'boolean') return this.reject(column, value, 'expected a boolean');
        out.byte(value ? 0x74 : 0x66); // t, f
        return true;
      case T_TIME: {
        const ms = this.timeOf(column, value);
        if (Number.isNaN(ms)) return false;
        out.ascii(typeof value === 'string' ? this.sentTime(value) : toServerTime(new Date(ms).toISOString()));
        if (isTime) this.time = ms;
        return true;
      }
      case T_INET:
        if (this.ipFamily(column, value) === 0) return false;
        out.ascii(value as string);
        return true;
      default: {
        const json = this.jsonOf(column, value);
        if (json === undefined) return false;
        if (json === '{}') out.ascii(json);
        else out.json(json);
        return true;
      }
    }
  }

  /** The text a timestamp string is sent as (toServerTime), kept for the next row, which often has the same. */
  private sentTime(value: string): string {
    if (value !== this.lastTimeSource) {
      this.lastTimeSource = value;
      this.lastTimeSent = toServerTime(value);
    }
    return this.lastTimeSent;
  }

  private bigintFits(column: Column, value: bigint): boolean {
    if (
      column.type === 'bigint' &&
      value >= -9223372036854775808n &&
      value <= 9223372036854775807n &&
      (column.min === undefined || value >= BigInt(column.min)) &&
      (column.max === undefined || value <= BigInt(column.max))
    ) {
      return true;
    }
    return this.reject(column, value, this.rangeText(column));
  }

  private isInteger(column: Column, value: unknown): value is number {
    if (typeof value !== 'number' || !Number.isInteger(value)) return this.reject(column, value, 'expected an integer');
    if (!this.inRange(column, value)) return this.reject(column, value, this.rangeText(column));
    return true;
  }

  private isFiniteInRange(column: Column, value: unknown): value is number {
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      return this.reject(column, value, 'expected a finite number');
    }
    if (!this.inRange(column, value)) return this.reject(column, value, this.rangeText(column));
    return true;
  }

  /** 4 or 6 for an address inet takes; 0, with `reason` set, otherwise. */
  private ipFamily(column: Column, value: unknown): number {
    const family = typeof value !== 'string' || value.includes('%') ? 0 : isIP(value);
    if (family === 0) this.reject(column, value, 'invalid IP address');
    return family;
  }

  /**
   * Epoch milliseconds of a timestamptz value (its sub-millisecond microseconds in `lastTimeMicros` for
   * text); NaN, with `reason` set, when it is not one PostgreSQL takes.
   */
  private timeOf(column: Column, value: unknown): number {
    if (typeof value === 'string') {
      // Rows of a log come in time order, many to the second: the last text parsed is often the next.
      if (value === this.lastTimeText) return this.lastTimeMs;
      const ms = parseTimestamp(value, this.timeParts);
      if (Number.isNaN(ms)) {
        this.reject(column, value, 'invalid or out-of-range timestamp (RFC 3339, years 0001-9999)');
        return ms;
      }
      this.lastTimeText = value;
      this.lastTimeMs = ms;
      this.lastTimeMicros = this.timeParts.micros;
      return ms;
    }
    // A number of milliseconds is cut to a whole one, as `new Date` does (the text format writes its ISO text).
    const ms = value instanceof Date ? value.getTime() : typeof value === 'number' ? Math.trunc(value) : Number.NaN;
    if (!(ms >= MIN_TIME && ms <= MAX_TIME)) {
      this.reject(column, value, 'timestamp out of range');
      return Number.NaN;
    }
    return ms;
  }

  /** JSON text of a jsonb value with its strings as stored (nul.ts); undefined, with `reason` set, if none. */
  private jsonOf(column: Column, value: unknown): string | undefined {
    // Parsed access records carry an empty `extra`: the common case, without JSON.stringify.
    if (isEmptyPlainObject(value)) return '{}';
    let json: string | undefined;
    try {
      json = JSON.stringify(value);
    } catch (error) {
      this.reject(column, '[value]', `not JSON-serialisable (${(error as Error).message})`);
      return undefined;
    }
    if (json === undefined) {
      this.reject(column, value, 'not JSON-serialisable');
      return undefined;
    }
    if (JSON_HINT.test(json)) {
      json = storeNulJson(json);
      if (LONE_SURROGATE.test(json)) {
        this.reject(column, '[value]', 'contains an unpaired surrogate');
        return undefined;
      }
    }
    return json;
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
