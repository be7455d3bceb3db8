/**
 * Time arithmetic without Date parsing on the hot path: timestamps are split into fields with
 * charCodeAt, turned into epoch seconds with integer civil-date arithmetic, and rendered through a
 * per-second cache (log lines share seconds).
 */

import { daysFromCivil, isLeapYear } from '../../../shared/calendar.ts';

export { daysFromCivil, digitsAt } from '../../../shared/calendar.ts';

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Whether the fields name a real wall-clock second (leap second 60 is refused, as Date does). */
export function validDateTime(y: number, mo: number, d: number, h: number, mi: number, s: number): boolean {
  if (y < 1 || y > 9999 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return false;
  if (d > (DAYS_IN_MONTH[mo - 1] as number)) return false;
  return !(mo === 2 && d === 29 && !isLeapYear(y));
}

export function localSeconds(y: number, mo: number, d: number, h: number, mi: number, s: number): number {
  return daysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
}

/** `Jan`..`Dec` at `pos` → 1..12, else 0. English names, as both servers write them in every locale. */
export function monthFromAbbr(text: string, pos: number): number {
  const key = (text.charCodeAt(pos) << 16) | (text.charCodeAt(pos + 1) << 8) | text.charCodeAt(pos + 2);
  return MONTHS.get(key) ?? 0;
}

export const MONTH_ABBR = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
export const MONTH_NAMES = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];
export const WEEKDAY_ABBR = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
export const WEEKDAY_NAMES = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

const MONTHS = new Map<number, number>(
  MONTH_ABBR.map((m, i) => [(m.charCodeAt(0) << 16) | (m.charCodeAt(1) << 8) | m.charCodeAt(2), i + 1]),
);

/** Two ASCII digits at `pos` → 0..99, else -1. */
export function twoDigits(text: string, pos: number): number {
  const a = text.charCodeAt(pos) - 48;
  const b = text.charCodeAt(pos + 1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}

/** `±hhmm` (colon optional: `±hh:mm`) at `pos` → minutes east of UTC, or NaN. */
export function offsetAt(text: string, pos: number, colon: boolean): number {
  const sign = text.charCodeAt(pos);
  if (sign !== 43 && sign !== 45) return Number.NaN;
  const hh = twoDigits(text, pos + 1);
  const mm = twoDigits(text, colon ? pos + 4 : pos + 3);
  if (hh < 0 || mm < 0 || hh > 23 || mm > 59 || (colon && text.charCodeAt(pos + 3) !== 58)) return Number.NaN;
  const minutes = hh * 60 + mm;
  return sign === 45 ? -minutes : minutes;
}

/** Renders epoch seconds + milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`, caching the last second. */
export class IsoClock {
  private second = Number.NaN;
  private prefix = '';
  private whole = '';
  /** The last CLF stamp decoded (`clfInto`), its ISO rendering and its offset. */
  lastClf = '';
  lastClfIso = '';
  lastClfOffset = 0;

  iso(utcSeconds: number, millis: number): string {
    if (utcSeconds !== this.second) {
      const iso = new Date(utcSeconds * 1000).toISOString();
      this.second = utcSeconds;
      this.whole = iso;
      this.prefix = iso.slice(0, 20);
    }
    if (millis === 0) return this.whole;
    return this.prefix + (millis < 10 ? '00' : millis < 100 ? '0' : '') + millis + 'Z';
  }
}

/** Offsets of a time zone for wall-clock times in it; only misses call Intl. */
export class ZoneOffsets {
  readonly utc: boolean;
  private readonly format: Intl.DateTimeFormat | undefined;
  private readonly cache = new Map<number, number>();

  constructor(zone: string) {
    this.utc = zone === 'UTC' || zone === 'Etc/UTC' || zone === 'GMT';
    this.format = this.utc
      ? undefined
      : new Intl.DateTimeFormat('en-US', {
          timeZone: zone,
          hourCycle: 'h23',
          year: 'numeric',
          month: 'numeric',
          day: 'numeric',
          hour: 'numeric',
          minute: 'numeric',
          second: 'numeric',
        });
  }

  /** Minutes east of UTC in effect at the wall-clock second `local` (seconds since the epoch, as if UTC). */
  offsetForLocal(local: number): number {
    if (this.utc) return 0;
    // Zone transitions fall on quarter hours; one lookup per quarter hour of wall time.
    const bucket = Math.floor(local / 900);
    const hit = this.cache.get(bucket);
    if (hit !== undefined) return hit;
    let offset = this.offsetAt(local);
    const second = this.offsetAt(local - offset * 60);
    if (second !== offset) offset = second;
    if (this.cache.size > 4096) this.cache.clear();
    this.cache.set(bucket, offset);
    return offset;
  }

  private offsetAt(utcSeconds: number): number {
    const parts = (this.format as Intl.DateTimeFormat).formatToParts(new Date(utcSeconds * 1000));
    const get = (type: string): number => Number(parts.find((p) => p.type === type)?.value ?? 0);
    const wall = localSeconds(get('year'), get('month'), get('day'), get('hour'), get('minute'), get('second'));
    return Math.round((wall - utcSeconds) / 60);
  }
}

/** Whether `zone` is a time zone Intl knows. */
export function isKnownZone(zone: string): boolean {
  // The default: asking Intl loads its time-zone data, a good part of `etl validate`'s time.
  if (zone === 'UTC') return true;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}
