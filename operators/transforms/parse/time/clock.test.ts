import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { daysFromCivil, IsoClock, localSeconds, offsetAt, validDateTime, ZoneOffsets } from './clock.ts';

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
