/** Dead letters and event times as every stage builds and reads them (engine/record.ts). */
import { describe, expect, it } from 'vitest';
import { deadLetter, type EtlRecord, eventTimeOf, ORIGIN } from '../../engine/record.ts';

const origin = { source: 'logs', file: '/var/log/a.log', offset: 0, line: 1 };

describe('deadLetter', () => {
  it('keeps a line as its text and bytes, also when the source cut it, and other records as JSON', () => {
    const cut: EtlRecord = {
      message: 'GET /\uFFFD',
      message_base64: Buffer.from([0x47, 0x45, 0x54, 0x20, 0x2f, 0xff]).toString('base64'),
      truncated: true,
      line_bytes: 203_776,
      max_line_bytes: 65_536,
      [ORIGIN]: origin,
    };
    const letter = deadLetter(cut, 'parsed', 'not a line of any format', 0);
    expect(letter).toEqual({
      stage: 'parsed',
      reason: 'not a line of any format',
      time: '1970-01-01T00:00:00.000Z',
      origin,
      raw: 'GET /\uFFFD',
      raw_base64: 'R0VUIC//',
      [ORIGIN]: origin,
    });
    expect(deadLetter({ message: 'a line', line_bytes_at_least: true }, 's', 'r').raw).toBe('a line');
    expect(deadLetter({ message: 'a line', status: 200 }, 's', 'r').raw).toBe('{"message":"a line","status":200}');
  });
});

describe('eventTimeOf', () => {
  it('reads ISO texts, epoch milliseconds and Dates, and no number a Date cannot hold', () => {
    expect(eventTimeOf('2026-12-05T10:00:00Z')).toBe(Date.UTC(2026, 11, 5, 10));
    expect(eventTimeOf(1_700_000_000_000)).toBe(1_700_000_000_000);
    expect(eventTimeOf(new Date(5))).toBe(5);
    expect(eventTimeOf(1.76e18)).toBeNaN();
    expect(eventTimeOf(null)).toBeNaN();
    expect(eventTimeOf('yesterday')).toBeNaN();
  });
});
