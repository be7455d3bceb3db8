/**
 * The live progress and the summary. On a terminal, what counts is what the screen shows: the bytes the
 * board writes are fed to a terminal emulator (xterm.js, headless), and its screen lines are asserted.
 */
import xterm from '@xterm/headless';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createProgressBoard,
  duration,
  fixed,
  formatBytes,
  progressBar,
  summary,
  type Ticker,
} from '../../engine/telemetry/progress.ts';
import type { RunStats } from '../../engine/telemetry/types.ts';

const { Terminal } = xterm;

/** A terminal of `columns` × `rows` that the board writes to; `screen()` is what a person sees. */
function fakeTerminal(columns = 100, rows = 20) {
  // convertEol: the kernel's terminal driver turns \n into \r\n (onlcr); the emulator must do it here.
  const terminal = new Terminal({ cols: columns, rows, allowProposedApi: true, convertEol: true });
  const writes: string[] = [];
  const stream = {
    columns,
    rows,
    isTTY: true,
    write(chunk: string) {
      writes.push(chunk);
      terminal.write(chunk);
      return true;
    },
  };
  const screen = async (): Promise<string[]> => {
    await new Promise<void>((resolve) => terminal.write('', resolve));
    const buffer = terminal.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i)?.translateToString(true) ?? '');
    while (lines.length > 0 && lines.at(-1) === '') lines.pop();
    return lines;
  };
  return { stream, writes, screen };
}

function fakeClock() {
  const clock = { t: 0, now: () => clock.t };
  return clock;
}

/** A ticker the test turns by hand: `tick()` is what the board's timer would do. */
function manualTicker() {
  const state = { running: 0, starts: 0, everyMs: 0, callback: undefined as (() => void) | undefined };
  const ticker: Ticker = (everyMs, callback) => {
    state.running++;
    state.starts++;
    state.everyMs = everyMs;
    state.callback = callback;
    return () => {
      state.running--;
      state.callback = undefined;
    };
  };
  const tick = () => {
    if (!state.callback) throw new Error('the board is not ticking');
    state.callback();
  };
  return { ticker, tick, state };
}

function stats(partial: Partial<RunStats>): RunStats {
  return {
    pipeline: 'web',
    elapsedMs: 0,
    recordsIn: 0,
    recordsOut: 0,
    sinks: {},
    rejected: 0,
    errors: 0,
    inputErrors: 0,
    bytesRead: 0,
    warnings: [],
    reports: [],
    ...partial,
  };
}

function rate(line: string): number {
  const match = /([\d,]+) rec\/s/.exec(line);
  if (!match?.[1]) throw new Error(`no rate in ${line}`);
  return Number(match[1].replaceAll(',', ''));
}

describe('live progress on a terminal', () => {
  it('redraws one row in place with a bar, rate, totals, rejects, percent and ETA', async () => {
    const term = fakeTerminal(140);
    const clock = fakeClock();
    const progress = createProgressBoard({ stream: term.stream, tty: true, now: clock.now }).track('web');

    clock.t = 1_000;
    progress.update(
      stats({ recordsIn: 10_000, recordsOut: 9_000, rejected: 12, bytesRead: 1_000_000, bytesTotal: 4_000_000 }),
    );
    let screen = await term.screen();
    expect(screen).toHaveLength(1);
    const first = screen[0] ?? '';
    expect(first).toMatch(/^web {2}\[█████░{15}\] 25\.0% {2}10,000 in {2}9,000 out {2}12 rejected {2}/);
    expect(rate(first)).toBe(10_000);
    // 3 MB left at 1 MB/s.
    expect(first).toContain('ETA 0:03');
    expect(first).toContain('elapsed 0:01');
    expect(first).not.toContain('errors');

    clock.t = 1_100;
    const writes = term.writes.length;
    progress.update(stats({ recordsIn: 11_000, bytesRead: 1_100_000, bytesTotal: 4_000_000 }));
    expect(term.writes).toHaveLength(writes); // within the 250 ms interval

    clock.t = 2_000;
    progress.update(stats({ recordsIn: 30_000, errors: 2, bytesRead: 3_000_000, bytesTotal: 4_000_000 }));
    screen = await term.screen();
    expect(screen).toHaveLength(1);
    const second = screen[0] ?? '';
    // Smoothed: between the previous rate (10,000/s) and this second's (20,000/s).
    expect(rate(second)).toBeGreaterThan(10_000);
    expect(rate(second)).toBeLessThan(20_000);
    expect(second).toContain('75.0%');
    expect(second).toContain('2 errors');
    expect(second).toMatch(/ETA 0:0[01]/);
  });

  it('keeps log lines whole above the rows, one row per pipeline, and ends with each summary', async () => {
    const term = fakeTerminal(120, 30);
    const clock = fakeClock();
    const board = createProgressBoard({ stream: term.stream, tty: true, now: clock.now, intervalMs: 100 });
    const a = board.track('alpha');
    const b = board.track('beta');
    clock.t = 500;
    a.update(stats({ pipeline: 'alpha', recordsIn: 100, bytesRead: 10, bytesTotal: 100 }));
    clock.t = 700;
    b.update(stats({ pipeline: 'beta', recordsIn: 200 }));
    board.log.write('2026-12-05T00:00:00.000Z INFO  [alpha/parsed] parse: detected format format=combined\n');
    clock.t = 900;
    a.update(stats({ pipeline: 'alpha', recordsIn: 500, bytesRead: 50, bytesTotal: 100 }));
    board.log.write('2026-12-05T00:00:01.000Z WARN  [beta/logs] no file matches paths\n');

    let screen = await term.screen();
    expect(screen).toHaveLength(4);
    expect(screen[0]).toBe('2026-12-05T00:00:00.000Z INFO  [alpha/parsed] parse: detected format format=combined');
    expect(screen[1]).toBe('2026-12-05T00:00:01.000Z WARN  [beta/logs] no file matches paths');
    expect(screen[2]).toMatch(/^alpha {2}\[██████████░{10}\] 50\.0% {2}500 in/);
    expect(screen[3]).toMatch(/^beta {2}200 in/);

    clock.t = 1_000;
    a.finish(stats({ pipeline: 'alpha', recordsIn: 1_000, elapsedMs: 1_000 }), { ok: true });
    screen = await term.screen();
    expect(screen.slice(2, 4)).toEqual(['pipeline alpha', '  records read     1,000']);
    expect(screen.at(-2)).toBe('  outcome          succeeded');
    expect(screen.at(-1)).toMatch(/^beta {2}200 in/);

    b.finish(stats({ pipeline: 'beta', recordsIn: 200, elapsedMs: 1_000 }), { ok: true });
    screen = await term.screen();
    expect(screen.filter((line) => /^(alpha|beta) {2}/.test(line))).toEqual([]);
    expect(screen.at(-1)).toBe('  outcome          succeeded');
  });

  it('fits each row to the terminal width, and shows no percent or ETA for unbounded inputs', async () => {
    const term = fakeTerminal(40);
    const clock = fakeClock();
    const progress = createProgressBoard({ stream: term.stream, tty: true, now: clock.now }).track('long');
    clock.t = 500;
    progress.update(stats({ pipeline: 'a-rather-long-pipeline-name', recordsIn: 5_000, recordsOut: 5_000 }));
    const screen = await term.screen();
    expect(screen).toHaveLength(1);
    expect((screen[0] ?? '').length).toBeLessThanOrEqual(39);
    expect(screen[0]).not.toContain('%');
  });

  it('keeps the rows moving between updates: elapsed time, a falling rate, and the last counts', async () => {
    const term = fakeTerminal(120, 10);
    const clock = fakeClock();
    const ticks = manualTicker();
    const board = createProgressBoard({ stream: term.stream, tty: true, now: clock.now, ticker: ticks.ticker });
    expect(ticks.state.starts).toBe(0);
    const follow = board.track('follow');
    const other = board.track('other');
    expect(ticks.state).toMatchObject({ running: 1, everyMs: 250 });

    // Figures before any record: a pipeline waiting for input shows so at the next tick.
    clock.t = 100;
    follow.update(stats({ pipeline: 'follow' }));
    clock.t = 1_000;
    ticks.tick();
    expect(await term.screen()).toEqual([expect.stringMatching(/^follow {2}0 in {2}0 out .* elapsed 0:01$/)]);

    // Five lines read, then written by the sink within the draw interval: the second update is not drawn at once.
    clock.t = 5_000;
    follow.update(stats({ pipeline: 'follow', recordsIn: 5 }));
    clock.t = 5_100;
    other.update(stats({ pipeline: 'other', recordsIn: 7, recordsOut: 7 }));
    follow.update(stats({ pipeline: 'follow', recordsIn: 5, recordsOut: 5 }));
    expect((await term.screen())[0]).toContain('5 in  0 out');
    clock.t = 5_250;
    ticks.tick();
    let screen = await term.screen();
    expect(screen[0]).toMatch(/^follow {2}5 in {2}5 out .* elapsed 0:05$/);
    expect(screen[1]).toMatch(/^other {2}7 in {2}7 out .* elapsed 0:05$/);

    // Then nothing comes: each tick moves the clock and lets the rate fall to nothing.
    for (clock.t = 5_500; clock.t <= 20_000; clock.t += 250) ticks.tick();
    screen = await term.screen();
    expect(screen).toHaveLength(2);
    expect(screen[0]).toMatch(/^follow {2}5 in {2}5 out {2}0 rejected {2}0 rec\/s {2}elapsed 0:20$/);
    expect(screen[1]).toMatch(/^other {2}7 in {2}7 out {2}0 rejected {2}0 rec\/s {2}elapsed 0:20$/);

    // An unchanged frame writes nothing.
    const writes = term.writes.length;
    clock.t = 20_100;
    ticks.tick();
    expect(term.writes).toHaveLength(writes);

    // The ticker runs while a pipeline is tracked, and stops with the last.
    follow.finish(stats({ pipeline: 'follow', recordsIn: 5, recordsOut: 5, elapsedMs: 20_000 }), { ok: true });
    expect(ticks.state.running).toBe(1);
    clock.t = 21_000;
    ticks.tick();
    expect((await term.screen()).at(-1)).toMatch(/^other {2}7 in .* elapsed 0:21$/);
    other.finish(stats({ pipeline: 'other', recordsIn: 7, recordsOut: 7, elapsedMs: 21_000 }), { ok: true });
    expect(ticks.state.running).toBe(0);
    expect((await term.screen()).at(-1)).toBe('  outcome          succeeded');
  });

  it('draws eighths of a block at the bar edge', () => {
    expect(progressBar(0, 4)).toBe('[░░░░]');
    expect(progressBar(50, 4)).toBe('[██░░]');
    expect(progressBar(62.5, 4)).toBe('[██▌░]');
    expect(progressBar(100, 4)).toBe('[████]');
    expect(progressBar(140, 4)).toBe('[████]');
  });
});

describe('progress off a terminal', () => {
  it('prints a plain line every 10 s and never a carriage return or escape', () => {
    const writes: string[] = [];
    const stream = { write: (chunk: string) => writes.push(chunk) > 0 };
    const clock = fakeClock();
    const board = createProgressBoard({ stream, tty: false, now: clock.now });
    const progress = board.track('web');
    for (clock.t = 0; clock.t < 10_000; clock.t += 500) progress.update(stats({ recordsIn: clock.t }));
    expect(writes).toHaveLength(0);
    clock.t = 10_000;
    progress.update(stats({ recordsIn: 50_000, bytesRead: 10, bytesTotal: 100 }));
    clock.t = 15_000;
    progress.update(stats({ recordsIn: 60_000 }));
    expect(writes).toHaveLength(1);
    expect(writes[0]).toMatch(/^web {2}10\.0% {2}50,000 in .*\n$/);
    board.log.write('a log line\n');
    progress.finish(stats({ recordsIn: 60_000, elapsedMs: 15_000 }), { ok: true });
    const output = writes.join('');
    expect(output).toContain('a log line\n');
    expect(output).not.toContain('\r');
    expect(output).not.toContain('\x1b');
  });

  it('prints the last counts of a pipeline that goes quiet, and no line while nothing moves', () => {
    const writes: string[] = [];
    const stream = { write: (chunk: string) => writes.push(chunk) > 0 };
    const clock = fakeClock();
    const ticks = manualTicker();
    const board = createProgressBoard({ stream, tty: false, now: clock.now, ticker: ticks.ticker });
    const a = board.track('a');
    const b = board.track('b');
    expect(ticks.state).toMatchObject({ running: 1, everyMs: 1_000 });
    clock.t = 3_000;
    a.update(stats({ pipeline: 'a', recordsIn: 5 }));
    a.update(stats({ pipeline: 'a', recordsIn: 5, recordsOut: 5 }));
    // b waits for input from the start: one line says it runs, then none while nothing moves.
    b.update(stats({ pipeline: 'b' }));
    for (clock.t = 4_000; clock.t < 10_000; clock.t += 1_000) ticks.tick();
    expect(writes).toEqual([]);
    clock.t = 10_000;
    ticks.tick();
    expect(writes).toEqual([
      expect.stringMatching(/^a {2}5 in {2}5 out .* elapsed 0:10\n$/),
      expect.stringMatching(/^b {2}0 in {2}0 out .* elapsed 0:10\n$/),
    ]);
    writes.length = 0;
    for (clock.t = 11_000; clock.t <= 60_000; clock.t += 1_000) ticks.tick();
    expect(writes).toEqual([]);

    // A change after a quiet spell is printed at the next tick, not at the next input.
    clock.t = 60_100;
    a.update(stats({ pipeline: 'a', recordsIn: 8, recordsOut: 5 }));
    a.update(stats({ pipeline: 'a', recordsIn: 8, recordsOut: 8 }));
    expect(writes[0]).toMatch(/^a {2}8 in {2}5 out .* elapsed 1:00\n$/);
    clock.t = 70_100;
    ticks.tick();
    expect(writes[1]).toMatch(/^a {2}8 in {2}8 out .* elapsed 1:10\n$/);
    expect(writes).toHaveLength(2);

    a.finish(stats({ pipeline: 'a', recordsIn: 8, elapsedMs: 71_000 }), { ok: true });
    b.finish(stats({ pipeline: 'b', elapsedMs: 71_000 }), { ok: true });
    expect(ticks.state.running).toBe(0);
    expect(writes.join('')).not.toContain('\x1b');
  });
});

describe('summary', () => {
  it('reports read, each sink, rejected with share, errors, warnings, duration, rate and outcome', () => {
    const text = summary(
      stats({
        recordsIn: 1_234_567,
        recordsOut: 1_230_000,
        sinks: {
          warehouse: { written: 1_230_000, deadLetters: false },
          rejects: { written: 4_567, deadLetters: true },
          audit: { written: 1, deadLetters: false },
        },
        rejected: 4_567,
        errors: 1,
        elapsedMs: 62_000,
        bytesRead: 3 * 1024 * 1024,
        warnings: [
          { stage: 'logs', message: 'no file matches paths `logs/*.log`', count: 1 },
          { stage: undefined, message: 'slow checkpoint', count: 3 },
        ],
      }),
      { ok: true },
    );
    expect(text.split('\n')).toEqual([
      'pipeline web',
      '  records read     1,234,567 (3.0 MiB)',
      '  to warehouse     1,230,000 records written',
      '  to rejects       4,567 dead letters written',
      '  to audit         1 record written',
      '  rejected         4,567 (0.37% of read)',
      '  errors           1',
      '  warnings         4 (as logged above)',
      '                   [logs] no file matches paths `logs/*.log`',
      '                   slow checkpoint (×3)',
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
    expect(text).not.toContain('warnings');
    expect(text).toContain('outcome          failed: sink store: connection refused');
  });

  it('widens the label column for long sink ids, and gives each rejecting stage its own share', () => {
    const text = summary(
      stats({
        recordsIn: 14_000,
        sinks: { country_hourly: { written: 1_234, deadLetters: false }, rejects: { written: 250, deadLetters: true } },
        rejected: 9_770,
        rejectedBy: { parsed: 250, by_country: 9_520 },
      }),
      { ok: true },
    );
    const lines = text.split('\n');
    expect(lines).toContain('  to country_hourly  1,234 records written');
    expect(lines).toContain('  to rejects         250 dead letters written');
    expect(lines).toContain('  rejected           9,770 by 2 stages');
    expect(lines).toContain('                     parsed: 250 (1.79% of read)');
    expect(lines).toContain('                     by_country: 9,520 (68.00% of read)');
  });

  it('formats durations and sizes', () => {
    expect([850, 12_340, 65_000, 7_384_000].map(duration)).toEqual(['850ms', '12.3s', '1m 05s', '2h 03m 04s']);
    expect([512, 1536, 5 * 1024 ** 3].map(formatBytes)).toEqual(['512 B', '1.5 KiB', '5.0 GiB']);
  });

  it('writes numbers exactly as Intl.NumberFormat en-US does, without setting up ICU at start', () => {
    for (const decimals of [0, 1, 2]) {
      const intl = new Intl.NumberFormat('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
      const mine = fixed(decimals);
      // Halves on the decimal form (0.005, 606.795), carries (999.995), grouping, and values left to Intl.
      for (const value of [0, -0, 0.5, 2.5, 0.005, 1.005, 606.795, 999.995, 999_999.5, 1234567.891, 1e-7, 1e21]) {
        expect(mine.format(value), `${value} with ${decimals} decimals`).toBe(intl.format(value));
      }
      fc.assert(
        fc.property(
          fc.oneof(
            fc.double({ min: -1e12, max: 1e12, noNaN: true }),
            fc.nat().map((n) => n / 1000),
          ),
          (v) => {
            expect(mine.format(v)).toBe(intl.format(v));
          },
        ),
      );
    }
  });
});
