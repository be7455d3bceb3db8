import { describe, expect, it } from 'vitest';
import type { Logger } from '../../../engine/operator.ts';
import { silentLogger } from '../../../engine/runtime/noop.ts';
import { testContext } from '../file/test-support.ts';
import { createBlackholeSink } from './blackhole.ts';

const ctx = { deadLetter: () => {} };

describe('blackhole sink', () => {
  it('counts what it drops', async () => {
    const sink = createBlackholeSink({}, testContext());
    await sink.write([{ a: 1 }, { a: 2 }], ctx);
    await sink.write([{ a: 3 }], ctx);
    expect(sink.count).toBe(3);
    await sink.close?.();
    await sink.close?.();
  });

  it('logs the rate at the interval asked for', async () => {
    const lines: string[] = [];
    const logger: Logger = { ...silentLogger, info: (message) => lines.push(message) };
    const sink = createBlackholeSink({ print_interval_seconds: 1 }, testContext({ logger }));
    await sink.write([{ a: 1 }], ctx);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await sink.close?.();
    expect(lines.some((l) => /blackhole: 1 records, \d+ records\/s/.test(l))).toBe(true);
  });
});
