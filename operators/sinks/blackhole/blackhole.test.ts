import { describe, expect, it, vi } from 'vitest';
import type { Logger } from '../../../engine/operator.ts';
import { silentLogger } from '../../../engine/runtime/noop.ts';
import { recordingContext } from '../../../test/support/context.ts';
import { createBlackholeSink } from './blackhole.ts';

const ctx = { deadLetter: () => {} };

describe('blackhole sink', () => {
  it('counts what it drops', async () => {
    const sink = createBlackholeSink({}, recordingContext());
    await sink.write([{ a: 1 }, { a: 2 }], ctx);
    await sink.write([{ a: 3 }], ctx);
    expect(sink.count).toBe(3);
    await sink.close?.();
    await sink.close?.();
  });

  it('logs the count and rate at the interval asked for, and stops logging on close', async () => {
    vi.useFakeTimers();
    try {
      const lines: string[] = [];
      const logger: Logger = { ...silentLogger, info: (message) => lines.push(message) };
      const sink = createBlackholeSink({ print_interval_seconds: 2 }, recordingContext({ logger }));
      await sink.write(
        Array.from({ length: 3000 }, (_, i) => ({ i })),
        ctx,
      );
      vi.advanceTimersByTime(2000);
      await sink.write([{ a: 1 }], ctx);
      vi.advanceTimersByTime(2000);
      await sink.close?.();
      vi.advanceTimersByTime(10_000);
      expect(lines).toEqual(['blackhole: 3000 records, 1500 records/s', 'blackhole: 3001 records, 1 records/s']);
    } finally {
      vi.useRealTimers();
    }
  });
});
