/**
 * A growable byte buffer that rows of COPY binary format are written into: per row a 16-bit field count,
 * per field a 32-bit length (-1 for NULL) and the value in the type's binary send format. Written by
 * hand rather than with a COPY-binary library: the sink's hot path writes straight into one slab per
 * batch (no object per row or per value), and the libraries at hand lack numeric and inet.
 * Values arrive validated (encoder.ts); this file only lays them out.
 */
import { SlabBuffer } from './slab-buffer.ts';
import ipaddr from 'ipaddr.js';
import { storeNul } from './nul.ts';

/** `PGCOPY\n\377\r\n\0`, no flags, no header extension: what begins a binary COPY stream. */
export const BINARY_HEADER: Buffer = Buffer.from([
  0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
]);
/** A field count of -1: what ends a binary COPY stream. */
export const BINARY_TRAILER: Buffer = Buffer.from([0xff, 0xff]);

const TWO_32 = 4_294_967_296;
/** 2000-01-01T00:00:00Z, PostgreSQL's timestamp epoch, in Unix milliseconds. */
const PG_EPOCH_MS = 946_684_800_000;
/** Up to this many UTF-16 units a text value is copied by a loop here when it is ASCII (see copy-buffer.ts). */
const SHORT = 16;
/** What storeNul (nul.ts) changes: U+0000, and a backslash that may start `\x00` or `\x5c`. */
const NEEDS_STORING = /[\0\\]/;
const NUMERIC_NEG = 0x4000;
const PGSQL_AF_INET = 2;
const PGSQL_AF_INET6 = 3;

export class BinaryCopyBuffer extends SlabBuffer {
  /** Starts a row of `fields` fields. */
  row(fields: number): void {
    this.reserve(2);
    this.buf.writeUInt16BE(fields, this.end);
    this.end += 2;
  }

  nul(): void {
    this.reserve(4);
    this.buf.writeInt32BE(-1, this.end);
    this.end += 4;
  }

  /** Text as stored (U+0000 as `\x00`, nul.ts), UTF-8. */
  text(value: string): void {
    const n = value.length;
    if (n <= SHORT) {
      this.reserve(4 + n);
      const buf = this.buf;
      let pos = this.end + 4;
      let i = 0;
      for (; i < n; i++) {
        const c = value.charCodeAt(i);
        if (c === 0 || c === 0x5c || c >= 0x80) break;
        buf[pos++] = c;
      }
      if (i === n) {
        buf.writeInt32BE(n, this.end);
        this.end = pos;
        return;
      }
    }
    this.utf8(NEEDS_STORING.test(value) ? storeNul(value) : value);
  }

  /** jsonb: version 1, then the JSON text (its strings already as stored, nul.ts). */
  jsonb(json: string): void {
    this.reserve(5 + 3 * json.length);
    const at = this.end;
    this.buf[at + 4] = 1;
    const written =
      json.length <= SHORT && isAscii(json) ? this.latin1At(json, at + 5) : this.buf.write(json, at + 5, 'utf8');
    this.buf.writeInt32BE(written + 1, at);
    this.end = at + 5 + written;
  }

  int2(value: number): void {
    this.reserve(6);
    this.buf.writeInt32BE(2, this.end);
    this.buf.writeInt16BE(value, this.end + 4);
    this.end += 6;
  }

  int4(value: number): void {
    this.reserve(8);
    this.buf.writeInt32BE(4, this.end);
    this.buf.writeInt32BE(value, this.end + 4);
    this.end += 8;
  }

  /** A safe integer as int8. */
  int8(value: number): void {
    const hi = Math.floor(value / TWO_32);
    this.int8Parts(hi, value - hi * TWO_32);
  }

  int8Big(value: bigint): void {
    this.reserve(12);
    this.buf.writeInt32BE(8, this.end);
    this.buf.writeBigInt64BE(value, this.end + 4);
    this.end += 12;
  }

  float8(value: number): void {
    this.reserve(12);
    this.buf.writeInt32BE(8, this.end);
    // -0 as 0: the text format (String(-0) is "0") stores 0 too.
    this.buf.writeDoubleBE(value === 0 ? 0 : value, this.end + 4);
    this.end += 12;
  }

  bool(value: boolean): void {
    this.reserve(5);
    this.buf.writeInt32BE(1, this.end);
    this.buf[this.end + 4] = value ? 1 : 0;
    this.end += 5;
  }

  /**
   * timestamptz: microseconds since 2000-01-01 UTC as int8, from Unix milliseconds and the microseconds
   * within that millisecond. The product does not fit a double exactly (years up to 9999 need 58 bits),
   * so it is built in two 32-bit halves.
   */
  timestamp(ms: number, micros: number): void {
    const rel = ms - PG_EPOCH_MS;
    const msHi = Math.floor(rel / TWO_32);
    const low = (rel - msHi * TWO_32) * 1000 + micros; // < 2^42: exact
    const carry = Math.floor(low / TWO_32);
    this.int8Parts(msHi * 1000 + carry, low - carry * TWO_32);
  }

  /** numeric from the decimal text of a finite number (as `String(number)` writes it, exponent included). */
  numeric(decimal: string): void {
    writeNumeric(this, decimal);
  }

  /** inet of a validated address (`family` as net.isIP gives it: 4 or 6), as a host address. */
  inet(address: string, family: number): void {
    if (family === 4) {
      this.reserve(12);
      const buf = this.buf;
      const at = this.end;
      buf.writeInt32BE(8, at);
      buf[at + 4] = PGSQL_AF_INET;
      buf[at + 5] = 32;
      buf[at + 6] = 0; // not cidr
      buf[at + 7] = 4;
      let octet = 0;
      let pos = at + 8;
      for (let i = 0; i < address.length; i++) {
        const c = address.charCodeAt(i);
        if (c === 0x2e) {
          buf[pos++] = octet;
          octet = 0;
        } else octet = octet * 10 + (c - 0x30);
      }
      buf[pos] = octet;
      this.end = at + 12;
      return;
    }
    this.reserve(24);
    const buf = this.buf;
    const at = this.end;
    buf.writeInt32BE(20, at);
    buf[at + 4] = PGSQL_AF_INET6;
    buf[at + 5] = 128;
    buf[at + 6] = 0;
    buf[at + 7] = 16;
    writeIpv6(address, buf, at + 8);
    this.end = at + 24;
  }

  /** A field of `bytes` bytes, written by `fill` into the returned offset (numeric). */
  field(bytes: number): number {
    this.reserve(4 + bytes);
    this.buf.writeInt32BE(bytes, this.end);
    const at = this.end + 4;
    this.end = at + bytes;
    return at;
  }

  int16At(at: number, value: number): void {
    this.buf.writeInt16BE(value, at);
  }

  private int8Parts(hi: number, lo: number): void {
    this.reserve(12);
    this.buf.writeInt32BE(8, this.end);
    this.buf.writeInt32BE(hi, this.end + 4);
    this.buf.writeUInt32BE(lo, this.end + 8);
    this.end += 12;
  }

  private utf8(value: string): void {
    this.reserve(4 + 3 * value.length);
    const written = this.buf.write(value, this.end + 4, 'utf8');
    this.buf.writeInt32BE(written, this.end);
    this.end += 4 + written;
  }

  private latin1At(value: string, at: number): number {
    for (let i = 0; i < value.length; i++) this.buf[at + i] = value.charCodeAt(i);
    return value.length;
  }
}

/**
 * The 16 bytes of a valid IPv6 address (net.isIP said 6) at `at`. By hand: ipaddr.js reads `::a.b.c.d` as
 * `::ffff:a.b.c.d`, another address than the one PostgreSQL stores for that text.
 */
function writeIpv6(address: string, buf: Buffer, at: number): void {
  buf.fill(0, at, at + 16);
  const gap = address.indexOf('::');
  const head = gap < 0 ? address : address.slice(0, gap);
  const tail = gap < 0 ? '' : address.slice(gap + 2);
  writeGroups(head, buf, at);
  if (tail !== '') writeGroups(tail, buf, at + 16 - groupBytes(tail));
}

/** Bytes of `a:b:…` groups, a dotted IPv4 tail counting 4. */
function groupBytes(groups: string): number {
  const parts = groups.split(':');
  return 2 * parts.length + ((parts.at(-1) as string).includes('.') ? 2 : 0);
}

function writeGroups(groups: string, buf: Buffer, at: number): void {
  if (groups === '') return;
  let pos = at;
  for (const part of groups.split(':')) {
    if (part.includes('.')) {
      for (const octet of part.split('.')) buf[pos++] = Number(octet);
    } else {
      buf.writeUInt16BE(Number.parseInt(part, 16), pos);
      pos += 2;
    }
  }
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) >= 0x80) return false;
  return true;
}

/**
 * numeric's send format: digit count, weight (of the first base-10000 digit), sign, display scale, then
 * the base-10000 digits. The display scale is what numeric_in gives the same text: the digits after the
 * point less the exponent, so both formats store (and show) the same value.
 */
function writeNumeric(out: BinaryCopyBuffer, decimal: string): void {
  let i = 0;
  const negative = decimal.charCodeAt(0) === 0x2d;
  if (negative) i++;
  let digits = '';
  let integerDigits = -1;
  let exponent = 0;
  for (; i < decimal.length; i++) {
    const c = decimal.charCodeAt(i);
    if (c === 0x2e) integerDigits = digits.length;
    else if (c === 0x65 || c === 0x45) {
      exponent = Number(decimal.slice(i + 1));
      break;
    } else digits += decimal[i];
  }
  if (integerDigits < 0) integerDigits = digits.length;
  const scale = Math.max(0, digits.length - integerDigits - exponent);
  // The decimal point sits after `point` digits; pad both ends to whole groups of four.
  const point = integerDigits + exponent;
  const lead = ((-point % 4) + 4) % 4;
  const padded = '0'.repeat(lead) + digits;
  const groups: number[] = [];
  for (let g = 0; g < padded.length; g += 4) groups.push(Number(padded.slice(g, g + 4).padEnd(4, '0')));
  let weight = (point + lead) / 4 - 1;
  let first = 0;
  while (first < groups.length && groups[first] === 0) {
    first++;
    weight--;
  }
  let last = groups.length;
  while (last > first && groups[last - 1] === 0) last--;
  const count = last - first;
  if (count === 0) weight = 0;
  const at = out.field(8 + 2 * count);
  out.int16At(at, count);
  out.int16At(at + 2, weight);
  out.int16At(at + 4, negative && count > 0 ? NUMERIC_NEG : 0);
  out.int16At(at + 6, scale);
  for (let g = 0; g < count; g++) out.int16At(at + 8 + 2 * g, groups[first + g] as number);
}

/** The rows of a chunk of COPY binary rows (no header or trailer), each whole, for rows of `fields` fields. */
export function splitBinaryRows(bytes: Buffer): Buffer[] {
  const rows: Buffer[] = [];
  let at = 0;
  while (at < bytes.length) {
    const start = at;
    const fields = bytes.readUInt16BE(at);
    at += 2;
    for (let f = 0; f < fields; f++) {
      const length = bytes.readInt32BE(at);
      at += 4 + Math.max(0, length);
    }
    rows.push(bytes.subarray(start, at));
  }
  return rows;
}

/** The fields of one binary row: undefined for NULL, else the value's bytes. */
export function binaryFields(row: Buffer): Array<Buffer | undefined> {
  const fields: Array<Buffer | undefined> = [];
  const count = row.readUInt16BE(0);
  let at = 2;
  for (let f = 0; f < count; f++) {
    const length = row.readInt32BE(at);
    at += 4;
    if (length < 0) fields.push(undefined);
    else {
      fields.push(row.subarray(at, at + length));
      at += length;
    }
  }
  return fields;
}

/** The decimal text of a numeric in send format (dead letters of refused rows). */
export function readNumeric(value: Buffer): string {
  const count = value.readInt16BE(0);
  const weight = value.readInt16BE(2);
  const sign = value.readUInt16BE(4);
  const scale = value.readInt16BE(6);
  let integer = '';
  let fraction = '';
  for (let g = 0; g < count; g++) {
    const group = String(value.readInt16BE(8 + 2 * g)).padStart(4, '0');
    if (g <= weight) integer += group;
    else fraction += group;
  }
  if (weight >= count) integer += '0000'.repeat(weight - count + 1);
  if (weight < -1) fraction = '0000'.repeat(-1 - weight) + fraction;
  integer = integer.replace(/^0+(?=\d)/, '') || '0';
  fraction = fraction.padEnd(scale, '0').slice(0, scale);
  return `${sign === NUMERIC_NEG ? '-' : ''}${integer}${fraction === '' ? '' : `.${fraction}`}`;
}

/** Unix milliseconds and the microseconds within, of a timestamptz in send format. */
export function readTimestamp(value: Buffer): { ms: number; micros: number } {
  const hi = value.readInt32BE(0);
  const lo = value.readUInt32BE(4);
  // (hi * 2^32 + lo) / 1000 without leaving the exact range of a double: 2^32 = 4294967 * 1000 + 296.
  const rest = hi * 296 + lo;
  const restMs = Math.floor(rest / 1000);
  const hiMs = hi * 4_294_967;
  return { ms: PG_EPOCH_MS + hiMs + restMs, micros: rest - restMs * 1000 };
}

/** The text of an inet in send format. */
export function readInet(value: Buffer): string {
  const bytes = [...value.subarray(4, 4 + (value[3] as number))];
  return bytes.length === 4 ? bytes.join('.') : ipaddr.fromByteArray(bytes).toString();
}
