/**
 * Record → one line of COPY text format, validating every value against its column first: a value
 * PostgreSQL would reject would abort the whole load transaction, so it is caught here and the record is
 * dead-lettered on its own with the reason. One encoder per sink; no allocation per record beyond the line.
 */
import { isIP } from 'node:net';
import type { EtlRecord } from '../../../engine/record.ts';
import type { Column } from './columns.ts';
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

const NEEDS_ESCAPE = /[\\\t\n\r\0]/;
const ESCAPABLE = /[\\\t\n\r]/g;
const ESCAPES: Readonly<Record<string, string>> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
/** jsonb refuses \u0000 and unpaired surrogates (JSON.stringify escapes those, and only those, as \udXXX). */
const BAD_JSON_ESCAPE = /(?:^|[^\\])(?:\\\\)*\\u(?:0000|d[89a-f])/;
const MIN_TIME = -62135596800000; // 0001-01-01T00:00:00Z
const MAX_TIME = 253402300799999; // 9999-12-31T23:59:59.999Z

function escapeChar(c: string): string {
  return ESCAPES[c] as string;
}

/** COPY text escaping; undefined when the text holds a NUL byte, which PostgreSQL cannot store. */
export function escapeCopyText(value: string): string | undefined {
  if (!NEEDS_ESCAPE.test(value)) return value;
  if (value.includes('\0')) return undefined;
  return value.replace(ESCAPABLE, escapeChar);
}

/** Inverse of escapeCopyText for the escapes it produces (used by tests and by the bad-row splitter). */
export function unescapeCopyText(value: string): string {
  return value.replace(/\\([\\tnr])/g, (_m, c: string) =>
    c === 't' ? '\t' : c === 'n' ? '\n' : c === 'r' ? '\r' : '\\',
  );
}

function show(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

export class RowEncoder {
  readonly columns: readonly Column[];
  /** Why the last `encode` returned undefined. */
  reason = '';
  /** Event time (epoch ms) of the last encoded row; NaN when the time column is null. */
  time = Number.NaN;
  private readonly codes: Uint8Array;
  private readonly known: Set<string>;
  private readonly extraIndex: number;
  private readonly timeIndex: number;

  constructor(columns: readonly Column[], extraColumn: string, timeColumn: string | undefined) {
    this.columns = columns;
    this.codes = Uint8Array.from(columns, (c) => TYPE_CODES[c.type]);
    this.known = new Set(columns.map((c) => c.name));
    this.extraIndex = columns.findIndex((c) => c.name === extraColumn);
    this.timeIndex = timeColumn === undefined ? -1 : columns.findIndex((c) => c.name === timeColumn);
  }

  /** The COPY line (with its newline) for `record`, or undefined with `reason` set. */
  encode(record: EtlRecord): string | undefined {
    const columns = this.columns;
    this.time = Number.NaN;
    let line = '';
    for (let i = 0; i < columns.length; i++) {
      const column = columns[i] as Column;
      let value: unknown = record[column.name];
      if (i === this.extraIndex) value = this.extraValue(record, value);
      let text: string | undefined;
      if (value === undefined || value === null) {
        if (column.required) {
          this.reason = `${column.name}: missing required value`;
          return undefined;
        }
        text = '\\N';
      } else {
        text = this.encodeValue(column, this.codes[i] as number, value, i === this.timeIndex);
        if (text === undefined) return undefined;
      }
      line = i === 0 ? text : `${line}\t${text}`;
    }
    return `${line}\n`;
  }

  /** The extra column holds its own field plus every field that has no column. */
  private extraValue(record: EtlRecord, own: unknown): unknown {
    let merged: Record<string, unknown> | undefined;
    for (const key in record) {
      if (this.known.has(key)) continue;
      const value = record[key];
      if (value === undefined) continue;
      merged ??= own !== null && typeof own === 'object' && !Array.isArray(own) ? { ...own } : {};
      merged[key] = value;
    }
    return merged ?? own;
  }

  private encodeValue(column: Column, code: number, value: unknown, isTime: boolean): string | undefined {
    switch (code) {
      case T_TEXT: {
        const text =
          typeof value === 'string'
            ? value
            : typeof value === 'number' || typeof value === 'boolean'
              ? String(value)
              : undefined;
        if (text === undefined) return this.reject(column, value, 'expected text');
        const escaped = escapeCopyText(text);
        if (escaped === undefined) return this.reject(column, value, 'text contains a NUL byte');
        return escaped;
      }
      case T_INT: {
        if (typeof value === 'bigint') {
          if (column.type === 'bigint' && value >= -9223372036854775808n && value <= 9223372036854775807n) {
            if (
              (column.min === undefined || value >= BigInt(column.min)) &&
              (column.max === undefined || value <= BigInt(column.max))
            )
              return value.toString();
          }
          return this.reject(column, value, this.rangeText(column));
        }
        if (typeof value !== 'number' || !Number.isInteger(value))
          return this.reject(column, value, 'expected an integer');
        if (!this.inRange(column, value)) return this.reject(column, value, this.rangeText(column));
        return String(value);
      }
      case T_FLOAT:
        if (typeof value !== 'number' || !Number.isFinite(value))
          return this.reject(column, value, 'expected a finite number');
        if (!this.inRange(column, value)) return this.reject(column, value, this.rangeText(column));
        return String(value);
      case T_BOOL:
        if (typeof value !== 'boolean') return this.reject(column, value, 'expected a boolean');
        return value ? 't' : 'f';
      case T_TIME:
        return this.encodeTime(column, value, isTime);
      case T_INET:
        if (typeof value !== 'string' || value.includes('%') || isIP(value) === 0) {
          return this.reject(column, value, 'invalid IP address');
        }
        return value;
      default:
        return this.encodeJson(column, value);
    }
  }

  private encodeTime(column: Column, value: unknown, isTime: boolean): string | undefined {
    let ms: number;
    let text: string;
    if (typeof value === 'string') {
      ms = parseTimestamp(value);
      if (Number.isNaN(ms))
        return this.reject(column, value, 'invalid or out-of-range timestamp (RFC 3339, years 0001-9999)');
      text = value;
    } else {
      ms = value instanceof Date ? value.getTime() : typeof value === 'number' ? value : Number.NaN;
      if (!(ms >= MIN_TIME && ms <= MAX_TIME)) return this.reject(column, value, 'timestamp out of range');
      text = new Date(ms).toISOString();
    }
    if (isTime) this.time = ms;
    return text;
  }

  private encodeJson(column: Column, value: unknown): string | undefined {
    let json: string | undefined;
    try {
      json = JSON.stringify(value);
    } catch (error) {
      return this.reject(column, '[value]', `not JSON-serialisable (${(error as Error).message})`);
    }
    if (json === undefined) return this.reject(column, value, 'not JSON-serialisable');
    if (BAD_JSON_ESCAPE.test(json))
      return this.reject(column, '[value]', 'contains a NUL character or an unpaired surrogate');
    return escapeCopyText(json);
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

  private reject(column: Column, value: unknown, why: string): undefined {
    this.reason = `${column.name}: ${show(value)} ${why}`;
    return undefined;
  }
}
