import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addBuckets,
  bucketLabel,
  bucketStart,
  civilFromDays,
  daysFromCivil,
  parseBucketLabel,
  parseRetention,
  parseTimestamp,
} from './time.ts';

const YEAR_1 = new Date('0001-01-01T00:00:00Z').getTime();
const YEAR_9999_END = new Date('9999-12-31T23:59:59.999Z').getTime();

describe('parseTimestamp', () => {
  it('agrees with Date.parse on every ISO instant of years 0001-9999', () => {
    fc.assert(
      fc.property(fc.integer({ min: YEAR_1, max: YEAR_9999_END }), (ms) => {
        const text = new Date(ms).toISOString();
        expect(parseTimestamp(text)).toBe(ms);
      }),
      { numRuns: 2000 },
    );
  });

  it('applies offsets, fractions and the space separator as PostgreSQL does', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: YEAR_1 + 86_400_000, max: YEAR_9999_END - 86_400_000 }),
        fc.integer({ min: -14 * 60, max: 14 * 60 }),
        fc.constantFrom('T', ' '),
        (ms, offset, sep) => {
          const local = new Date(ms + offset * 60_000).toISOString().slice(0, 23).replace('T', sep);
          const sign = offset < 0 ? '-' : '+';
          const abs = Math.abs(offset);
          const zone = `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
          expect(parseTimestamp(local + zone)).toBe(ms);
          expect(parseTimestamp(local + zone.replace(':', ''))).toBe(ms);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('rounds to microseconds, carrying into the next day', () => {
    expect(parseTimestamp('2024-01-01T23:59:59.9999995Z')).toBe(Date.parse('2024-01-02T00:00:00Z'));
    expect(parseTimestamp('2024-01-01T23:59:59.9999994Z')).toBe(Date.parse('2024-01-01T23:59:59.999Z'));
    expect(parseTimestamp('2024-03-10T10:00:00+05')).toBe(Date.parse('2024-03-10T05:00:00Z'));
    expect(parseTimestamp('2024-03-10T10:00:00')).toBe(Date.parse('2024-03-10T10:00:00Z'));
  });

  it('gives the microseconds within the millisecond as PostgreSQL rounds them (the fraction as a double)', () => {
    const parts = { micros: -1 };
    expect(parseTimestamp('2024-01-01T00:00:00.123456Z', parts)).toBe(Date.parse('2024-01-01T00:00:00.123Z'));
    expect(parts.micros).toBe(456);
    // 0.0000005 as a double is just below 5e-7: PostgreSQL stores 0 microseconds, not 1.
    parseTimestamp('2024-01-01T00:00:00.0000005Z', parts);
    expect(parts.micros).toBe(0);
    parseTimestamp('2024-01-01T00:00:00.0000016Z', parts);
    expect(parts.micros).toBe(2);
  });

  it.each([
    '2023-02-29T00:00:00Z',
    '2024-13-01T00:00:00Z',
    '0000-01-01T00:00:00Z',
    '2024-01-01T24:00:00Z',
    '2024-01-01T00:60:00Z',
    '2024-01-01T00:00:00Zx',
    '2024-01-01T00:00:00.Z',
    '2024-01-01T00:00:00+1',
    '+275760-09-13T00:00:00.000Z',
    '10/Oct/2000:13:55:36 -0700',
    '2024-01-01',
  ])('refuses %s', (text) => {
    expect(parseTimestamp(text)).toBeNaN();
  });
});

describe('calendar buckets', () => {
  it('civilFromDays inverts daysFromCivil', () => {
    fc.assert(
      fc.property(fc.integer({ min: -719162, max: 2932896 }), (days) => {
        const { year, month, day } = civilFromDays(days);
        expect(daysFromCivil(year, month, day)).toBe(days);
      }),
    );
  });

  it.each(['hour', 'day', 'month'] as const)('%s buckets contain their instants and labels round-trip', (g) => {
    fc.assert(
      fc.property(fc.integer({ min: YEAR_1, max: YEAR_9999_END - 40 * 86_400_000 }), (ms) => {
        const start = bucketStart(ms, g);
        const next = addBuckets(start, 1, g);
        expect(start).toBeLessThanOrEqual(ms);
        expect(next).toBeGreaterThan(ms);
        expect(bucketStart(next, g)).toBe(next);
        expect(addBuckets(next, -1, g)).toBe(start);
        expect(parseBucketLabel(bucketLabel(start, g), g)).toBe(start);
      }),
    );
  });

  it('labels follow the calendar', () => {
    const t = Date.parse('2024-02-29T13:45:00Z');
    expect(bucketLabel(bucketStart(t, 'hour'), 'hour')).toBe('2024022913');
    expect(bucketLabel(bucketStart(t, 'day'), 'day')).toBe('20240229');
    expect(bucketLabel(bucketStart(t, 'month'), 'month')).toBe('202402');
    expect(addBuckets(bucketStart(t, 'month'), 11, 'month')).toBe(Date.parse('2025-01-01T00:00:00Z'));
    expect(parseBucketLabel('20230229', 'day')).toBeNaN();
    expect(parseBucketLabel('2024', 'month')).toBeNaN();
  });

  it('parses retention periods', () => {
    expect(parseRetention('90d')).toBe(90 * 86_400_000);
    expect(parseRetention('12h')).toBe(12 * 3_600_000);
    expect(parseRetention('2w')).toBe(14 * 86_400_000);
  });
});
