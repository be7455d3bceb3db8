/**
 * Timestamps as logs write them, decoded into a record's `timestamp` (ISO UTC, ms) and
 * `timestamp_offset_minutes`, with charCodeAt arithmetic and the per-second IsoClock.
 */
import { intValue, secondsToMs } from '../formats/numbers.ts';
import {
  type IsoClock,
  localSeconds,
  monthFromAbbr,
  offsetAt,
  twoDigits,
  validDateTime,
  type ZoneOffsets,
} from './clock.ts';

export interface Stamped {
  timestamp: string | null;
  timestamp_offset_minutes: number | null;
}

/** `10/Oct/2000:13:55:36 -0700` at `s` (Apache %t without brackets, nginx $time_local). */
export function clfInto(rec: Stamped, text: string, s: number, clock: IsoClock): boolean {
  // Lines share seconds: the same 26 characters as the last stamp decode to the same instant.
  const last = clock.lastClf;
  if (last !== '' && text.startsWith(last, s)) {
    rec.timestamp = clock.lastClfIso;
    rec.timestamp_offset_minutes = clock.lastClfOffset;
    return true;
  }
  const day = twoDigits(text, s);
  const month = monthFromAbbr(text, s + 3);
  const year = intValue(text, s + 7, s + 11);
  const hour = twoDigits(text, s + 12);
  const minute = twoDigits(text, s + 15);
  const second = twoDigits(text, s + 18);
  const offset = offsetAt(text, s + 21, false);
  if (
    text.charCodeAt(s + 2) !== 47 ||
    text.charCodeAt(s + 6) !== 47 ||
    text.charCodeAt(s + 11) !== 58 ||
    text.charCodeAt(s + 14) !== 58 ||
    text.charCodeAt(s + 17) !== 58 ||
    text.charCodeAt(s + 20) !== 32 ||
    Number.isNaN(offset) ||
    !validDateTime(year, month, day, hour, minute, second)
  ) {
    return false;
  }
  const iso = clock.iso(localSeconds(year, month, day, hour, minute, second) - offset * 60, 0);
  rec.timestamp = iso;
  rec.timestamp_offset_minutes = offset;
  clock.lastClf = text.slice(s, s + CLF_LENGTH);
  clock.lastClfIso = iso;
  clock.lastClfOffset = offset;
  return true;
}

/** `10/Oct/2000:13:55:36 -0700` */
const CLF_LENGTH = 26;

/**
 * ISO-8601 in `text[s, e)`: `2000-10-10T13:55:36` (or a space for `T`), optional `.fff`/`,fff`, then
 * `±hh:mm`, `±hhmm`, `Z`, or nothing (then the time is in `zone`).
 */
export function isoInto(rec: Stamped, text: string, s: number, e: number, clock: IsoClock, zone: ZoneOffsets): boolean {
  if (e - s < 19 || text.charCodeAt(s + 4) !== 45 || text.charCodeAt(s + 7) !== 45) return false;
  const year = intValue(text, s, s + 4);
  const month = twoDigits(text, s + 5);
  const day = twoDigits(text, s + 8);
  const sep = text.charCodeAt(s + 10);
  const hour = twoDigits(text, s + 11);
  const minute = twoDigits(text, s + 14);
  const second = twoDigits(text, s + 17);
  if (
    (sep !== 84 && sep !== 32) ||
    text.charCodeAt(s + 13) !== 58 ||
    text.charCodeAt(s + 16) !== 58 ||
    !validDateTime(year, month, day, hour, minute, second)
  ) {
    return false;
  }
  let i = s + 19;
  let millis = 0;
  if (text.charCodeAt(i) === 46 || text.charCodeAt(i) === 44) {
    let j = i + 1;
    while (j < e && text.charCodeAt(j) >= 48 && text.charCodeAt(j) <= 57) j++;
    const digits = Math.min(j - i - 1, 3);
    if (digits === 0) return false;
    millis = intValue(text, i + 1, i + 1 + digits) * 10 ** (3 - digits);
    i = j;
  }
  const local = localSeconds(year, month, day, hour, minute, second);
  let offset: number;
  let known = true;
  if (i === e) {
    offset = zone.offsetForLocal(local);
    known = !zone.utc;
  } else if (e - i === 1 && (text.charCodeAt(i) | 0x20) === 122) offset = 0;
  else if (e - i === 6) offset = offsetAt(text, i, true);
  else if (e - i === 5) offset = offsetAt(text, i, false);
  else return false;
  if (Number.isNaN(offset)) return false;
  rec.timestamp = clock.iso(local - offset * 60, millis);
  rec.timestamp_offset_minutes = known ? offset : null;
  return true;
}

/** Epoch seconds with an optional fraction in `text[s, e)` (`1710227702.123`, nginx $msec). */
export function epochInto(rec: Stamped, text: string, s: number, e: number, clock: IsoClock): boolean {
  const dot = text.indexOf('.', s);
  const whole = dot < 0 || dot >= e ? e : dot;
  const seconds = intValue(text, s, whole);
  if (seconds < 0) return false;
  const ms = whole === e ? 0 : secondsToMs(text, whole, e);
  if (ms < 0) return false;
  rec.timestamp = clock.iso(seconds, Math.floor(ms));
  return true;
}
