import { describe, expect, it } from 'vitest';
import { createProgress, duration, formatBytes, summary } from '../../engine/telemetry/progress.ts';
import type { RunStats } from '../../engine/telemetry/types.ts';

const CLEAR_LINE = '\r\x1b[2K';

function fakeTerminal(columns?: number) {
  const writes: string[] = [];
  return { writes, stream: { columns, write: (chunk: string) => writes.push(chunk) > 0 } };
}

function fakeClock() {
  const clock = { t: 0, now: () => clock.t };
  return clock;
}

function stats(partial: Partial<RunStats>): RunStats {
  return {
    pipeline: 'web',
    elapsedMs: 0,
    recordsIn: 0,
    recordsOut: 0,
    rejected: 0,
    errors: 0,
    bytesRead: 0,
    ...partial,
  };
}

function rate(line: string): number {
  const match = /([\d,]+) rec\/s/.exec(line);
  if (!match?.[1]) throw new Error(`no rate in ${line}`);
  return Number(match[1].replaceAll(',', ''));
}

describe('live progress on a terminal', () => {
  it('redraws one line with rate, totals, rejects, percent and ETA', () => {
    const { writes, stream } = fakeTerminal();
    const clock = fakeClock();
    const progress = createProgress({ stream, tty: true, now: clock.now });

    clock.t = 1_000;
    progress.update(
      stats({ recordsIn: 10_000, recordsOut: 9_000, rejected: 12, bytesRead: 1_000_000, bytesTotal: 4_000_000 }),
    );
    expect(writes).toHaveLength(1);
    const first = writes[0] ?? '';
    expect(first.startsWith(CLEAR_LINE)).toBe(true);
    expect(first).not.toContain('\n');
    expect(first).toContain('web');
    expect(first).toContain('25.0%');
    expect(first).toContain('10,000 in');
    expect(first).toContain('9,000 out');
    expect(first).toContain('12 rejected');
    expect(rate(first)).toBe(10_000);
    // 3 MB left at 1 MB/s.
    expect(first).toContain('ETA 0:03');
    expect(first).toContain('elapsed 0:01');
    expect(first).not.toContain('errors');

    clock.t = 1_100;
    progress.update(stats({ recordsIn: 11_000, bytesRead: 1_100_000, bytesTotal: 4_000_000 }));
    expect(writes).toHaveLength(1); // within the 250 ms interval

    clock.t = 2_000;
    progress.update(stats({ recordsIn: 30_000, errors: 2, bytesRead: 3_000_000, bytesTotal: 4_000_000 }));
    expect(writes).toHaveLength(2);
    const second = writes[1] ?? '';
    // Smoothed: between the previous rate (10,000/s) and this second's (20,000/s).
    expect(rate(second)).toBeGreaterThan(10_000);
    expect(rate(second)).toBeLessThan(20_000);
    expect(second).toContain('75.0%');
    expect(second).toContain('2 errors');
    expect(second).toMatch(/ETA 0:0[01]/);
  });

  it('shows no percent or ETA for unbounded inputs, and fits the terminal width', () => {
    const { writes, stream } = fakeTerminal(40);
    const clock = fakeClock();
    const progress = createProgress({ stream, tty: true, now: clock.now, intervalMs: 100 });
    clock.t = 500;
    progress.update(stats({ pipeline: 'a-rather-long-pipeline-name', recordsIn: 5_000, recordsOut: 5_000 }));
    const line = (writes[0] ?? '').slice(CLEAR_LINE.length);
    expect(line.length).toBeLessThanOrEqual(39);
    expect(line).not.toContain('%');
    expect(line).not.toContain('ETA');
  });

  it('clears the live line before the summary', () => {
    const { writes, stream } = fakeTerminal();
    const clock = fakeClock();
    const progress = createProgress({ stream, tty: true, now: clock.now });
    clock.t = 300;
    progress.update(stats({ recordsIn: 10 }));
    progress.finish(stats({ recordsIn: 10, recordsOut: 10, elapsedMs: 300 }), { ok: true });
    expect(writes[1]).toBe(CLEAR_LINE);
    expect(writes[2]).toMatch(/^pipeline web\n/);
  });
});

describe('progress off a terminal', () => {
  it('prints a plain line every 10 s and never a carriage return or escape', () => {
    const { writes, stream } = fakeTerminal();
    const clock = fakeClock();
    const progress = createProgress({ stream, tty: false, now: clock.now });
    for (clock.t = 0; clock.t < 10_000; clock.t += 500) progress.update(stats({ recordsIn: clock.t }));
    expect(writes).toHaveLength(0);
    clock.t = 10_000;
    progress.update(stats({ recordsIn: 50_000, bytesRead: 10, bytesTotal: 100 }));
    clock.t = 15_000;
    progress.update(stats({ recordsIn: 60_000 }));
    expect(writes).toHaveLength(1);
    expect(writes[0]).toMatch(/^web {2}10\.0% {2}50,000 in .*\n$/);
    progress.finish(stats({ recordsIn: 60_000, elapsedMs: 15_000 }), { ok: true });
    const output = writes.join('');
    expect(output).not.toContain('\r');
    expect(output).not.toContain('\x1b');
  });
});

describe('summary', () => {
  it('reports read, written, rejected with share, errors, duration, rate and outcome', () => {
    const text = summary(
      stats({
        recordsIn: 1_234_567,
        recordsOut: 1_230_000,
        rejected: 4_567,
        errors: 1,
        elapsedMs: 62_000,
        bytesRead: 3 * 1024 * 1024,
      }),
      { ok: true },
    );
    expect(text.split('\n')).toEqual([
      'pipeline web',
      '  records read     1,234,567 (3.0 MiB)',
      '  records written  1,230,000',
      '  rejected         4,567 (0.37% of read)',
      '  errors           1',
      '  duration         1m 02s',
      '  average rate     19,912 records/s',
      '  outcome          succeeded',
      '',
    ]);
  });

  it('says why a run failed, and copes with an empty run', () => {
    const text = summary(stats({}), { ok: false, error: 'sink store: connection refused' });
    expect(text).toContain('rejected         0 (0.00% of read)');
    expect(text).toContain('average rate     --');
    expect(text).toContain('duration         0ms');
    expect(text).toContain('outcome          failed: sink store: connection refused');
  });

  it('formats durations and sizes', () => {
    expect([850, 12_340, 65_000, 7_384_000].map(duration)).toEqual(['850ms', '12.3s', '1m 05s', '2h 03m 04s']);
    expect([512, 1536, 5 * 1024 ** 3].map(formatBytes)).toEqual(['512 B', '1.5 KiB', '5.0 GiB']);
  });
});
