/**
 * Event-time arithmetic without Date objects on the hot path: RFC 3339 parsing by character codes (the
 * same instant PostgreSQL will store, microsecond rounding included) and UTC calendar math for buckets.
 */

import { civilFromDays, daysFromCivil, daysInMonth, digitsAt as digits } from '../../shared/calendar.ts';

export { civilFromDays, daysFromCivil } from '../../shared/calendar.ts';

const MS_PER_HOUR = 3_600_000;
const MS_PER_DAY = 86_400_000;

/**
 * Epoch milliseconds of `YYYY-MM-DD[T ]HH:MM:SS[.fraction][Z|±HH[:MM]]` (no offset: UTC, the session time
 * zone the sink sets), or NaN when the text is not such a timestamp or names a day that does not exist.
 * Years 0001-9999 only: every one of them is in PostgreSQL's range. With `parts`, its `micros` is set to the
 * microseconds within the millisecond (what binary COPY sends besides the milliseconds).
 */
export function parseTimestamp(s: string, parts?: { micros: number }): number {
  const n = s.length;
  if (n < 19) return Number.NaN;
  const year = digits(s, 0, 4);
  const month = digits(s, 5, 2);
  const day = digits(s, 8, 2);
  const hour = digits(s, 11, 2);
  const minute = digits(s, 14, 2);
  const second = digits(s, 17, 2);
  const sep = s.charCodeAt(10);
  if (
    year < 1 ||
    month < 1 ||
    month > 12 ||
    day < 1 ||
    day > daysInMonth(year, month) ||
    hour < 0 ||
    hour > 23 ||
    minute < 0 ||
    minute > 59 ||
    second < 0 ||
    second > 60 ||
    s.charCodeAt(4) !== 45 ||
    s.charCodeAt(7) !== 45 ||
    (sep !== 84 && sep !== 116 && sep !== 32) ||
    s.charCodeAt(13) !== 58 ||
    s.charCodeAt(16) !== 58
  ) {
    return Number.NaN;
  }
  let i = 19;
  // PostgreSQL keeps microseconds: rint(fraction * 1e6) of the fraction read as a double (ParseFractionalSecond).
  // Up to six digits that is the digits themselves; beyond, the double decides (.0000005 is just below half).
  let micros = 0;
  if (i < n && s.charCodeAt(i) === 46) {
    const point = i;
    i++;
    const start = i;
    let scale = 100_000;
    while (i < n) {
      const c = s.charCodeAt(i) - 48;
      if (c < 0 || c > 9) break;
      if (scale >= 1) micros += c * scale;
      scale /= 10;
      i++;
    }
    if (i === start) return Number.NaN;
    if (i - start > 6) micros = roundHalfEven(Number(s.slice(point, i)) * 1e6);
  }
  let offsetMinutes = 0;
  if (i < n) {
    const c = s.charCodeAt(i);
    if ((c === 90 || c === 122) && i + 1 === n) i++;
    else if (c === 43 || c === 45) {
      const oh = digits(s, i + 1, 2);
      let om = 0;
      if (i + 3 === n) i += 3;
      else if (i + 6 === n && s.charCodeAt(i + 3) === 58) {
        om = digits(s, i + 4, 2);
        i += 6;
      } else if (i + 5 === n) {
        om = digits(s, i + 3, 2);
        i += 5;
      } else return Number.NaN;
      if (oh < 0 || oh > 15 || om < 0 || om > 59) return Number.NaN;
      offsetMinutes = (oh * 60 + om) * (c === 45 ? -1 : 1);
    } else return Number.NaN;
  }
  if (i !== n) return Number.NaN;
  if (parts !== undefined) parts.micros = micros % 1000;
  return (
    daysFromCivil(year, month, day) * MS_PER_DAY +
    hour * MS_PER_HOUR +
    minute * 60_000 +
    second * 1000 +
    Math.floor(micros / 1000) -
    offsetMinutes * 60_000
  );
}

/** C's rint in the default rounding mode: to the nearest integer, halves to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export type Granularity = 'hour' | 'day' | 'month';

/** Start (epoch ms, UTC) of the bucket holding `ms`. */
export function bucketStart(ms: number, granularity: Granularity): number {
  if (granularity === 'hour') return Math.floor(ms / MS_PER_HOUR) * MS_PER_HOUR;
  const days = Math.floor(ms / MS_PER_DAY);
  if (granularity === 'day') return days * MS_PER_DAY;
  const { year, month } = civilFromDays(days);
  return daysFromCivil(year, month, 1) * MS_PER_DAY;
}

/** Start of the bucket `count` buckets after the one starting at `start`. */
export function addBuckets(start: number, count: number, granularity: Granularity): number {
  if (granularity === 'hour') return start + count * MS_PER_HOUR;
  if (granularity === 'day') return start + count * MS_PER_DAY;
  const { year, month } = civilFromDays(Math.floor(start / MS_PER_DAY));
  const index = year * 12 + (month - 1) + count;
  return daysFromCivil(Math.floor(index / 12), (index % 12) + 1, 1) * MS_PER_DAY;
}

/** `2024031505` (hour), `20240315` (day), `202403` (month): the partition name suffix. */
export function bucketLabel(start: number, granularity: Granularity): string {
  const { year, month, day } = civilFromDays(Math.floor(start / MS_PER_DAY));
  const ym = String(year).padStart(4, '0') + String(month).padStart(2, '0');
  if (granularity === 'month') return ym;
  const ymd = ym + String(day).padStart(2, '0');
  if (granularity === 'day') return ymd;
  const msOfDay = start - Math.floor(start / MS_PER_DAY) * MS_PER_DAY;
  return ymd + String(Math.floor(msOfDay / MS_PER_HOUR)).padStart(2, '0');
}

/** Inverse of bucketLabel; NaN when the label does not fit the granularity. */
export function parseBucketLabel(label: string, granularity: Granularity): number {
  const expected = granularity === 'month' ? 6 : granularity === 'day' ? 8 : 10;
  if (label.length !== expected) return Number.NaN;
  const year = digits(label, 0, 4);
  const month = digits(label, 4, 2);
  const day = granularity === 'month' ? 1 : digits(label, 6, 2);
  const hour = granularity === 'hour' ? digits(label, 8, 2) : 0;
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour < 0 || hour > 23) {
    return Number.NaN;
  }
  return daysFromCivil(year, month, day) * MS_PER_DAY + hour * MS_PER_HOUR;
}

/** `90d` → milliseconds. */
export function parseRetention(text: string): number {
  const value = Number(text.slice(0, -1));
  const unit = text.at(-1);
  const hours = unit === 'h' ? 1 : unit === 'd' ? 24 : unit === 'w' ? 168 : Number.NaN;
  return value * hours * MS_PER_HOUR;
}

/** A timestamptz literal for DDL. */
export function sqlTimestamp(ms: number): string {
  return `'${new Date(ms).toISOString()}'`;
}
