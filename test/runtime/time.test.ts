/**
 * Time in the runtime: processing-time ticks reach a transform while no record arrives (entries expire,
 * windows close in a pipeline that follows its input), and the event-time watermark a stage sees.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { defineSource, defineTransform } from '../../engine/operator.ts';
import { type EtlRecord, ORIGIN } from '../../engine/record.ts';
import { runPipeline } from '../../engine/runtime/run.ts';
import { Watermark } from '../../engine/runtime/watermark.ts';
import { collected, collectSink } from '../support/operators.ts';
import { pipeline, stage } from '../support/spec.ts';

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'etl-time-'));
  made.push(dir);
  return dir;
};

beforeEach(() => collected.clear());

const T0 = Date.parse('2026-12-05T10:00:00Z');

/** Emits `count` records (keys `k0`…`k3`, event times one second apart), then waits until stopped. */
const quietSource = defineSource({
  type: 'test_quiet',
  stability: 'alpha',
  summary: 'emits, then goes quiet until stopped',
  schema: { $id: 'test_quiet', type: 'object' } as const,
  examples: [],
  outputs: { default: 'any' },
  unbounded: () => true,
  create(options: { count: number }, ctx) {
    return {
      async run(out) {
        const records: EtlRecord[] = Array.from({ length: options.count }, (_, i) => ({
          key: `k${i % 4}`,
          timestamp: new Date(T0 + i * 1000).toISOString(),
          [ORIGIN]: { source: ctx.id },
        }));
        await out.emit(records, options.count);
        await new Promise((resolve) => out.stopping.addEventListener('abort', resolve, { once: true }));
      },
    };
  },
});

/** Ends a key's session once no record for it came for `gap_ms` of processing time; reports the watermark. */
const sessionTransform = defineTransform({
  type: 'test_sessions',
  stability: 'alpha',
  summary: 'sessions by processing-time gap, closed on ticks',
  schema: { $id: 'test_sessions', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  outputs: { default: 'any' },
  create(options: { gap_ms: number }, ctx) {
    const open = new Map<string, { count: number; lastAt: number }>();
    const close = (now: number) => {
      const out: EtlRecord[] = [];
      for (const [key, session] of open) {
        if (now - session.lastAt < options.gap_ms) continue;
        out.push({ key, count: session.count, watermark: ctx.watermark() });
        open.delete(key);
      }
      return { default: out };
    };
    return {
      tickIntervalMs: 10,
      process(records: EtlRecord[]) {
        for (const record of records) {
          const session = open.get(record.key as string) ?? { count: 0, lastAt: 0 };
          session.count++;
          session.lastAt = Date.now();
          open.set(record.key as string, session);
        }
        return { default: [] };
      },
      tick: (now) => close(now),
      flush: () => close(Number.POSITIVE_INFINITY),
    };
  },
});

describe('ticks', () => {
  it('close sessions while no record arrives, before the source ends', async () => {
    const stop = new AbortController();
    const spec = pipeline(
      'ticks',
      tempDir(),
      [
        stage({ id: 'src', def: quietSource, options: { count: 40 } }),
        stage({ id: 'sessions', def: sessionTransform, inputs: ['src'], options: { gap_ms: 50 } }),
        stage({ id: 'out', def: collectSink, inputs: ['sessions'], options: { name: 'sessions' } }),
      ],
      { watermarkLatenessMs: 5000 },
    );
    const run = runPipeline(spec, { stop: stop.signal });
    // The source is quiet after its one batch: only ticks can close the sessions.
    while ((collected.get('sessions') ?? []).length < 4) await new Promise((resolve) => setTimeout(resolve, 5));
    stop.abort();
    const result = await run;
    expect(result.ok).toBe(true);
    const sessions = collected.get('sessions') ?? [];
    expect(sessions.map((s) => [s.key, s.count])).toEqual([
      ['k0', 10],
      ['k1', 10],
      ['k2', 10],
      ['k3', 10],
    ]);
    // The greatest event time seen (T0 + 39 s) minus the lateness.
    expect(sessions[0]?.watermark).toBe(T0 + 39_000 - 5000);
  });
});

describe('watermark', () => {
  const record = (source: string, time: number): EtlRecord => ({
    timestamp: new Date(time).toISOString(),
    [ORIGIN]: { source },
  });

  it('waits for every source upstream to send, or to be idle since the start, before it moves', () => {
    let now = 0;
    const watermark = new Watermark({
      field: 'timestamp',
      latenessMs: 0,
      idleMs: 100,
      now: () => now,
      expected: ['a', 'b'],
    });
    watermark.observe([record('a', T0 + 5000)]);
    expect(watermark.value()).toBeUndefined(); // b has not sent yet: its first records may be older
    watermark.observe([record('b', T0 + 1000)]);
    expect(watermark.value()).toBe(T0 + 1000);
    // A source that never sends holds it back only until it has been idle since the start.
    const other = new Watermark({
      field: 'timestamp',
      latenessMs: 0,
      idleMs: 100,
      now: () => now,
      expected: ['a', 'c'],
    });
    other.observe([record('a', T0 + 5000)]);
    expect(other.value()).toBeUndefined();
    now = 100;
    other.observe([record('a', T0 + 6000)]);
    expect(other.value()).toBe(T0 + 6000);
    // Records made by a stage (no source in their origin) count as every source seen.
    const made = new Watermark({ field: 'timestamp', latenessMs: 0, idleMs: 100, now: () => 0, expected: ['a', 'b'] });
    made.observe([{ timestamp: new Date(T0).toISOString() }]);
    expect(made.value()).toBe(T0);
  });

  it('is the greatest event time seen minus the lateness, the least over sources, idle ones aside', () => {
    let now = 0;
    const watermark = new Watermark({ field: 'timestamp', latenessMs: 1000, idleMs: 100, now: () => now });
    expect(watermark.value()).toBeUndefined();
    watermark.observe([record('a', T0 + 5000), record('a', T0 + 3000)]);
    expect(watermark.value()).toBe(T0 + 4000);
    watermark.observe([record('b', T0 + 2000)]);
    expect(watermark.value()).toBe(T0 + 1000); // b is behind: the fan-in waits for it
    now = 60;
    watermark.observe([record('a', T0 + 9000)]);
    expect(watermark.value()).toBe(T0 + 1000);
    now = 120; // b quiet for 120 ms > 100: it no longer holds the watermark back
    expect(watermark.value()).toBe(T0 + 8000);
    now = 500; // every source quiet: event time goes on with processing time from the last record (at 60)
    expect(watermark.value()).toBe(T0 + 8000 + 440);
    watermark.observe([{ timestamp: 'not a time', [ORIGIN]: { source: 'c' } }, { [ORIGIN]: { source: 'c' } }]);
    expect(watermark.value()).toBe(T0 + 8000 + 440);
  });

  it('goes on with processing time only while nothing the sources emitted is on its way', () => {
    let now = 0;
    let drained = false;
    const watermark = new Watermark({
      field: 'timestamp',
      latenessMs: 1000,
      idleMs: 100,
      now: () => now,
      drained: () => drained,
    });
    watermark.observe([record('a', T0 + 5000)]);
    now = 60_000; // quiet for a minute, but a batch is held up (a sink retrying): its records may be older
    expect(watermark.value()).toBe(T0 + 4000);
    drained = true; // every batch acknowledged: nothing older is coming
    expect(watermark.value()).toBe(T0 + 4000 + 60_000);
  });

  it('takes no notice of a number no Date can hold (an epoch in nanoseconds)', () => {
    const watermark = new Watermark({ field: 'ts', latenessMs: 0, idleMs: 1000 });
    watermark.observe([
      { ts: T0, [ORIGIN]: { source: 'a' } },
      { ts: 1.76e18, [ORIGIN]: { source: 'a' } },
    ]);
    expect(watermark.value()).toBe(T0);
  });

  it('reads epoch milliseconds and Dates too, from the field the settings name', () => {
    const watermark = new Watermark({ field: 'ts', latenessMs: 0, idleMs: 1000 });
    watermark.observe([
      { ts: T0, [ORIGIN]: { source: 'a' } },
      { ts: new Date(T0 + 10), [ORIGIN]: { source: 'a' } },
    ]);
    expect(watermark.value()).toBe(T0 + 10);
  });
});
