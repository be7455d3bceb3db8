import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { daysFromCivil, IsoClock, localSeconds, MONTH_ABBR, offsetAt, validDateTime, ZoneOffsets } from './clock.ts';
import { clfInto, type Stamped } from './stamps.ts';

describe('clock', () => {
  it('agrees with Date.UTC on every day from year 1 to 9999', () => {
    fc.assert(
      fc.property(fc.integer({ min: -719_162, max: 2_932_896 }), (day) => {
        const d = new Date(day * 86_400_000);
        expect(daysFromCivil(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate())).toBe(day);
      }),
    );
  });

  it('validates calendar dates, leap years included', () => {
    expect(validDateTime(2024, 2, 29, 0, 0, 0)).toBe(true);
    expect(validDateTime(2023, 2, 29, 0, 0, 0)).toBe(false);
    expect(validDateTime(1900, 2, 29, 0, 0, 0)).toBe(false);
    expect(validDateTime(2000, 2, 29, 0, 0, 0)).toBe(true);
    expect(validDateTime(2024, 4, 31, 0, 0, 0)).toBe(false);
    expect(validDateTime(2024, 1, 1, 24, 0, 0)).toBe(false);
  });

  it('renders instants like toISOString, reusing the cached second', () => {
    const clock = new IsoClock();
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 253_402_300_799 }), fc.integer({ min: 0, max: 999 }), (s, ms) => {
        expect(clock.iso(s, ms)).toBe(new Date(s * 1000 + ms).toISOString());
        expect(clock.iso(s, 0)).toBe(new Date(s * 1000).toISOString());
      }),
    );
  });

  it('reads ±hhmm and ±hh:mm offsets', () => {
    expect(offsetAt('-0700', 0, false)).toBe(-420);
    expect(offsetAt('+05:45', 0, true)).toBe(345);
    expect(offsetAt('+0560', 0, false)).toBeNaN();
    expect(offsetAt('0700', 0, false)).toBeNaN();
  });

  it('finds zone offsets for wall-clock times across DST changes', () => {
    const paris = new ZoneOffsets('Europe/Paris');
    expect(paris.offsetForLocal(localSeconds(2024, 3, 31, 1, 59, 59))).toBe(60);
    expect(paris.offsetForLocal(localSeconds(2024, 3, 31, 3, 0, 0))).toBe(120);
    expect(paris.offsetForLocal(localSeconds(2024, 10, 27, 3, 30, 0))).toBe(60);
    expect(new ZoneOffsets('Asia/Kathmandu').offsetForLocal(localSeconds(2024, 1, 1, 0, 0, 0))).toBe(345);
    expect(new ZoneOffsets('UTC').offsetForLocal(0)).toBe(0);
  });
});

describe('clfInto', () => {
  it('decodes a stamp like Date does, whether it repeats the last one or not', () => {
    const clock = new IsoClock();
    const stamp = fc
      .record({
        ms: fc.integer({ min: Date.UTC(1970, 0, 1), max: Date.UTC(2100, 0, 1) }),
        offset: fc.integer({ min: -14 * 60, max: 14 * 60 }),
      })
      .map(({ ms, offset }) => {
        const local = new Date(Math.floor(ms / 1000) * 1000 + offset * 60_000);
        const sign = offset < 0 ? '-' : '+';
        const abs = Math.abs(offset);
        const pad = (n: number) => String(n).padStart(2, '0');
        const text =
          `${pad(local.getUTCDate())}/${MONTH_ABBR[local.getUTCMonth()]}/${local.getUTCFullYear()}:` +
          `${pad(local.getUTCHours())}:${pad(local.getUTCMinutes())}:${pad(local.getUTCSeconds())} ` +
          `${sign}${pad(Math.floor(abs / 60))}${pad(abs % 60)}`;
        return { text, iso: new Date(Math.floor(ms / 1000) * 1000).toISOString(), offset };
      });
    // Runs of equal stamps, as log lines share seconds, between different ones.
    fc.assert(
      fc.property(fc.array(fc.tuple(stamp, fc.integer({ min: 1, max: 3 })), { maxLength: 20 }), (runs) => {
        for (const [{ text, iso, offset }, repeat] of runs) {
          for (let i = 0; i < repeat; i++) {
            const rec: Stamped = { timestamp: null, timestamp_offset_minutes: null };
            expect(clfInto(rec, `[${text}] "GET /"`, 1, clock)).toBe(true);
            expect(rec).toEqual({ timestamp: iso, timestamp_offset_minutes: offset });
          }
        }
        const rec: Stamped = { timestamp: null, timestamp_offset_minutes: null };
        expect(clfInto(rec, '[31/Feb/2024:00:00:00 +0000]', 1, clock)).toBe(false);
      }),
    );
    // The same wall-clock time in another zone is another instant.
    const rec: Stamped = { timestamp: null, timestamp_offset_minutes: null };
    clfInto(rec, '10/Oct/2000:13:55:36 -0700', 0, clock);
    expect(rec).toEqual({ timestamp: '2000-10-10T20:55:36.000Z', timestamp_offset_minutes: -420 });
    clfInto(rec, '10/Oct/2000:13:55:36 +0000', 0, clock);
    expect(rec).toEqual({ timestamp: '2000-10-10T13:55:36.000Z', timestamp_offset_minutes: 0 });
  });
});
