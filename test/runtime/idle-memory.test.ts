/** Memory given back once after each burst, when the pipeline has gone quiet (engine/runtime/idle-memory.ts). */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { releaseMemoryWhenIdle } from '../../engine/runtime/idle-memory.ts';

describe('releaseMemoryWhenIdle', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('collects once per quiet spell that follows activity, never while records flow or before any', () => {
    vi.useFakeTimers();
    let read = 0;
    const collect = vi.fn();
    const stop = releaseMemoryWhenIdle(() => read, 1000, collect);
    vi.advanceTimersByTime(3000); // nothing ever read: nothing to give back
    expect(collect).not.toHaveBeenCalled();
    for (let i = 0; i < 5; i++) {
      read += 100;
      vi.advanceTimersByTime(1000); // a burst: records every interval
    }
    expect(collect).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1000); // a whole interval without a record
    expect(collect).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(10_000); // still quiet: once is enough
    expect(collect).toHaveBeenCalledTimes(1);
    read += 1;
    vi.advanceTimersByTime(2000); // one more line, then quiet again
    expect(collect).toHaveBeenCalledTimes(2);
    stop();
    read += 1;
    vi.advanceTimersByTime(5000);
    expect(collect).toHaveBeenCalledTimes(2);
  });

  it('reaches V8 without --expose-gc and gives the young generation back', async () => {
    const { getHeapSpaceStatistics } = await import('node:v8');
    const newSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
    // Grow the young generation with short-lived garbage, as a burst of records does.
    let keep: unknown[] = [];
    for (let i = 0; i < 400_000; i++) {
      keep.push({ i, text: `line ${i}` });
      if (keep.length > 50_000) keep = [];
    }
    keep = [];
    const grown = newSpace();
    let read = 0;
    vi.useFakeTimers();
    const stop = releaseMemoryWhenIdle(() => read, 1000);
    read = 1;
    vi.advanceTimersByTime(2000);
    stop();
    expect(newSpace()).toBeLessThan(grown);
  });
});
