/**
 * What `etl apply` shows while it runs and when it ends.
 *
 * On a terminal, a board at the bottom of the screen holds one live row per running pipeline (a bar when the
 * input's size is known), redrawn in place at most every `intervalMs` by log-update; log lines written
 * through `board.log` are printed above it and stay in the scrollback, so neither logs nor other pipelines
 * are overwritten. Elsewhere (CI logs, files): a plain line per pipeline every ten seconds while its figures
 * change, never an escape. Each pipeline ends with its summary.
 *
 * A ticker, not only the run's updates, drives the drawing: a pipeline that follows its input mostly waits,
 * and its last update (a sink's write, say) may fall inside the interval after the one before. Between
 * updates the rows are drawn again from the figures last seen, so elapsed time moves, the rate falls to
 * zero, and the last counts show.
 */
import { createRequire } from 'node:module';
import type { RunStats, SinkStats } from './types.ts';

export interface ProgressStream {
  write(chunk: string): unknown;
  /** Terminal width and height, when known: live rows are cut to the width so that they never wrap. */
  readonly columns?: number;
  readonly rows?: number;
  readonly isTTY?: boolean;
}

export interface ProgressOptions {
  stream: ProgressStream;
  /** Draw live rows in place (a terminal that shows nothing else being written). */
  tty: boolean;
  /** Minimum time between two redraws on a terminal; default 250 ms. */
  intervalMs?: number;
  /** Clock, for tests. */
  now?: () => number;
  /** What calls the board back between updates; default a timer that never keeps the process alive. */
  ticker?: Ticker;
}

/** Calls `tick` every `everyMs` until the function it returns is called. */
export type Ticker = (everyMs: number, tick: () => void) => () => void;

const timerTicker: Ticker = (everyMs, tick) => {
  const timer = setInterval(tick, everyMs);
  // The live line alone never keeps a run's process alive.
  timer.unref();
  return () => clearInterval(timer);
};

export interface RunOutcome {
  ok: boolean;
  error?: string;
  /** Ended by a stop request (signal) rather than by the end of finite inputs. */
  stopped?: boolean;
}

export interface Progress {
  update(stats: RunStats): void;
  finish(stats: RunStats, outcome: RunOutcome): void;
}

export interface ProgressBoard {
  /** Where log lines go: on a terminal, above the live rows. */
  readonly log: { write(chunk: string): unknown };
  /** The live row of one pipeline, and its summary when it ends. */
  track(pipeline: string): Progress;
}

const TTY_INTERVAL_MS = 250;
const LOG_INTERVAL_MS = 10_000;
/** How often a plain board looks whether a line is due: its lines come at most this late. */
const PLAIN_TICK_MS = 1_000;
/** Rates are smoothed over about this long, so the figure is steady but follows a change within seconds. */
const SMOOTHING_MS = 2_000;
const BAR_WIDTH = 20;

/**
 * Numbers as `1,234,567.8`: a fixed number of decimals, half away from zero on the shortest decimal form of the
 * value, thousands grouped by commas, as Intl.NumberFormat('en-US') writes them. Written here because
 * Intl's first use sets up ICU: about 20 ms of every `etl apply`'s start, for a summary. Values written in
 * exponent form (below 1e-6, from 1e21), never counts or rates here, are left to Intl.
 */
export function fixed(decimals: number): { format(value: number): string } {
  let intl: Intl.NumberFormat | undefined;
  return {
    format(value) {
      const digits = String(Math.abs(value));
      if (!/^\d+(\.\d+)?$/.test(digits)) {
        intl ??= new Intl.NumberFormat('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
        return intl.format(value);
      }
      const [whole = '0', fraction = ''] = digits.split('.');
      // All the digits kept, as one integer; one more unit in the last place when the first dropped is 5 or more.
      let kept = BigInt(whole + fraction.slice(0, decimals).padEnd(decimals, '0'));
      if ((fraction[decimals] ?? '0') >= '5') kept += 1n;
      const text = kept.toString().padStart(decimals + 1, '0');
      const integerPart = text.slice(0, text.length - decimals).replace(/\B(?=(\d{3})+$)/g, ',');
      const sign = value < 0 || Object.is(value, -0) ? '-' : '';
      return decimals > 0 ? `${sign}${integerPart}.${text.slice(text.length - decimals)}` : `${sign}${integerPart}`;
    },
  };
}
const integer = fixed(0);
const oneDecimal = fixed(1);
const twoDecimals = fixed(2);

export function createProgressBoard(options: ProgressOptions): ProgressBoard {
  return options.tty ? terminalBoard(options) : plainBoard(options);
}

/** One pipeline's figures between two draws: the last seen, smoothed rates and the text last made of them. */
class Row {
  readonly startedAt: number;
  readonly records: SmoothedRate;
  readonly bytes: SmoothedRate;
  stats: RunStats | undefined;
  text = '';

  constructor(startedAt: number) {
    this.startedAt = startedAt;
    this.records = new SmoothedRate(startedAt);
    this.bytes = new SmoothedRate(startedAt);
  }

  sample(stats: RunStats, at: number, bar: boolean): string {
    this.stats = stats;
    this.records.sample(at, stats.recordsIn);
    this.bytes.sample(at, stats.bytesRead);
    this.text = liveLine(stats, at - this.startedAt, this.records.perSecond, this.bytes.perSecond, bar);
    return this.text;
  }
}

function terminalBoard(options: ProgressOptions): ProgressBoard {
  const { stream } = options;
  const now = options.now ?? Date.now;
  const intervalMs = options.intervalMs ?? TTY_INTERVAL_MS;
  // Required here, not imported: only a terminal draws live rows, and log-update with its dependencies is a
  // good part of the start of a run that has none (an ES module without top-level await, so require loads it).
  const { createLogUpdate } = createRequire(import.meta.url)('log-update') as typeof import('log-update');
  // The cursor stays visible: hidden, a process killed with SIGKILL would leave the terminal without one.
  const draw = createLogUpdate(stream as NodeJS.WriteStream, { showCursor: true });
  const rows = new Map<string, Row>();
  let lastDrawAt: number | undefined;

  const frame = () => {
    const width = stream.columns;
    const cut = (line: string) => (width !== undefined && width > 1 ? line.slice(0, width - 1) : line);
    // A pipeline not updated yet has no row to show.
    return [...rows.values()]
      .filter((row) => row.text !== '')
      .map((row) => cut(row.text))
      .join('\n');
  };
  const redraw = () => {
    const text = frame();
    if (text === '') draw.clear();
    else draw(text);
  };
  const persist = (text: string) => {
    draw.persist(text.endsWith('\n') ? text.slice(0, -1) : text);
    redraw();
  };
  // Every row drawn again from its last figures at the current time; log-update writes only what changed.
  const tick = () => {
    const t = now();
    for (const row of rows.values()) if (row.stats) row.sample(row.stats, t, true);
    lastDrawAt = t;
    redraw();
  };
  const ticking = whileTracking(options.ticker ?? timerTicker, intervalMs, tick);

  return {
    log: { write: (chunk: string) => persist(chunk) },
    track(pipeline) {
      const row = new Row(now());
      rows.set(pipeline, row);
      ticking.add();
      return {
        update(stats) {
          const t = now();
          row.sample(stats, t, true);
          if (lastDrawAt !== undefined && t - lastDrawAt < intervalMs) return;
          lastDrawAt = t;
          redraw();
        },
        finish(stats, outcome) {
          rows.delete(pipeline);
          ticking.remove();
          persist(summary(stats, outcome));
        },
      };
    },
  };
}

function plainBoard(options: ProgressOptions): ProgressBoard {
  const { stream } = options;
  const now = options.now ?? Date.now;
  /** Each tracked pipeline's way to print its line when one is due. */
  const due = new Set<() => void>();
  const ticking = whileTracking(options.ticker ?? timerTicker, PLAIN_TICK_MS, () => {
    for (const print of due) print();
  });
  return {
    log: stream,
    track() {
      const row = new Row(now());
      // The first line waits a full interval: short runs print only their summary.
      let lastDrawAt = row.startedAt;
      let latest: RunStats | undefined;
      // What the last line counted: a pipeline that waits for input prints no line until something moves.
      let printed: string | undefined;
      const print = () => {
        const t = now();
        if (latest === undefined || t - lastDrawAt < LOG_INTERVAL_MS) return;
        const counts = countsOf(latest);
        if (counts === printed) return;
        lastDrawAt = t;
        printed = counts;
        stream.write(`${row.sample(latest, t, false)}\n`);
      };
      due.add(print);
      ticking.add();
      return {
        update(stats) {
          latest = stats;
          print();
        },
        finish(stats, outcome) {
          due.delete(print);
          ticking.remove();
          stream.write(summary(stats, outcome));
        },
      };
    },
  };
}

/** The figures of a plain line other than time and rate, to tell whether a pipeline moved since the last. */
function countsOf(stats: RunStats): string {
  return [stats.recordsIn, stats.recordsOut, stats.rejected, stats.errors, stats.bytesRead, stats.bytesTotal].join();
}

/** A ticker that runs while at least one pipeline is tracked. */
function whileTracking(ticker: Ticker, everyMs: number, tick: () => void): { add(): void; remove(): void } {
  let tracked = 0;
  let stop: (() => void) | undefined;
  return {
    add() {
      tracked++;
      stop ??= ticker(everyMs, tick);
    },
    remove() {
      tracked--;
      if (tracked > 0) return;
      stop?.();
      stop = undefined;
    },
  };
}

/** Exponentially weighted rate of a growing total; the weight depends on the time between samples. */
class SmoothedRate {
  perSecond: number | undefined;
  #lastAt: number;
  #lastTotal = 0;

  constructor(startedAt: number) {
    this.#lastAt = startedAt;
  }

  sample(at: number, total: number): void {
    const dt = at - this.#lastAt;
    if (dt <= 0) return;
    const instant = ((total - this.#lastTotal) * 1000) / dt;
    this.perSecond =
      this.perSecond === undefined
        ? instant
        : this.perSecond + (1 - Math.exp(-dt / SMOOTHING_MS)) * (instant - this.perSecond);
    this.#lastAt = at;
    this.#lastTotal = total;
  }
}

function liveLine(
  stats: RunStats,
  elapsedMs: number,
  recordRate: number | undefined,
  byteRate: number | undefined,
  bar: boolean,
) {
  const parts = [stats.pipeline];
  const total = stats.bytesTotal;
  if (total !== undefined && total > 0) {
    const done = percent(stats.bytesRead, total);
    parts.push(`${bar ? `${progressBar(done)} ` : ''}${oneDecimal.format(done)}%`);
  }
  parts.push(
    `${integer.format(stats.recordsIn)} in`,
    `${integer.format(stats.recordsOut)} out`,
    `${integer.format(stats.rejected)} rejected`,
  );
  if (stats.errors > 0) parts.push(`${integer.format(stats.errors)} errors`);
  parts.push(recordRate === undefined ? '-- rec/s' : `${integer.format(recordRate)} rec/s`);
  if (total !== undefined && total > 0) parts.push(`ETA ${eta(total - stats.bytesRead, byteRate)}`);
  parts.push(`elapsed ${clock(elapsedMs)}`);
  return parts.join('  ');
}

/** `[██████░░░░░░░░░░░░░░]`, with eighth blocks at the edge. */
export function progressBar(done: number, width = BAR_WIDTH): string {
  const eighths = Math.round((Math.min(100, Math.max(0, done)) / 100) * width * 8);
  const full = Math.floor(eighths / 8);
  const partial = eighths % 8;
  const edge = partial > 0 ? ' ▏▎▍▌▋▊▉'[partial] : '';
  return `[${'█'.repeat(full)}${edge}${'░'.repeat(width - full - (edge ? 1 : 0))}]`;
}

function eta(remainingBytes: number, byteRate: number | undefined): string {
  if (remainingBytes <= 0) return clock(0);
  if (byteRate === undefined || byteRate <= 0) return '--:--';
  return clock((remainingBytes / byteRate) * 1000);
}

export function summary(stats: RunStats, outcome: RunOutcome): string {
  const seconds = stats.elapsedMs / 1000;
  const rows: [string, string][] = [
    [
      'records read',
      integer.format(stats.recordsIn) + (stats.bytesRead > 0 ? ` (${formatBytes(stats.bytesRead)})` : ''),
    ],
    ...Object.entries(stats.sinks).map(([id, sink]): [string, string] => [`to ${id}`, sinkFigure(sink)]),
    ...rejectedRows(stats),
    ['errors', integer.format(stats.errors)],
  ];
  if (stats.warnings.length > 0) {
    const total = stats.warnings.reduce((n, w) => n + w.count, 0);
    rows.push(['warnings', `${integer.format(total)} (as logged above)`]);
    for (const w of stats.warnings) {
      rows.push([
        '',
        `${w.stage ? `[${w.stage}] ` : ''}${w.message}${w.count > 1 ? ` (×${integer.format(w.count)})` : ''}`,
      ]);
    }
  }
  for (const report of stats.reports) {
    report.lines.forEach((line, i) => {
      rows.push([i === 0 ? report.stage : '', line]);
    });
  }
  rows.push(
    ['duration', duration(stats.elapsedMs)],
    ['average rate', seconds > 0 ? `${integer.format(stats.recordsIn / seconds)} records/s` : '--'],
    ['outcome', outcomeText(stats, outcome)],
  );
  // Labels hold sink and stage ids: the column is as wide as the longest, and at least what it always was.
  const width = Math.max(17, ...rows.map(([label]) => label.length + 2));
  const lines = [`pipeline ${stats.pipeline}`, ...rows.map(([label, value]) => `  ${label.padEnd(width)}${value}`)];
  return `${lines.join('\n')}\n`;
}

/**
 * The records rejected, as a share of those read. When more than one stage rejected, each stage's own share on a
 * line of its own: a record can be rejected by several stages (stored raw, refused by a rollup as too late), so
 * their sum is not a share of what was read.
 */
function rejectedRows(stats: RunStats): [string, string][] {
  const share = (count: number) => `${twoDecimals.format(percent(count, stats.recordsIn))}% of read`;
  const by = Object.entries(stats.rejectedBy ?? {}).filter(([, count]) => count > 0);
  if (by.length <= 1) return [['rejected', `${integer.format(stats.rejected)} (${share(stats.rejected)})`]];
  return [
    ['rejected', `${integer.format(stats.rejected)} by ${by.length} stages`],
    ...by.map(([stage, count]): [string, string] => ['', `${stage}: ${integer.format(count)} (${share(count)})`]),
  ];
}

function outcomeText(stats: RunStats, outcome: RunOutcome): string {
  if (!outcome.ok) return `failed${outcome.error ? `: ${outcome.error}` : ''}`;
  const ended = outcome.stopped ? 'stopped; the next run resumes from the last checkpoint' : 'succeeded';
  if (stats.inputErrors === 0) return ended;
  const inputs = `${integer.format(stats.inputErrors)} input${stats.inputErrors === 1 ? '' : 's'}`;
  return `${outcome.stopped ? ended : 'completed'}, but ${inputs} could not be read completely (logged above)`;
}

function sinkFigure(sink: SinkStats): string {
  const noun = sink.deadLetters ? 'dead letter' : 'record';
  return `${integer.format(sink.written)} ${noun}${sink.written === 1 ? '' : 's'} written`;
}

function percent(part: number, whole: number): number {
  return whole > 0 ? Math.min(100, (part / whole) * 100) : 0;
}

/** `m:ss` or `h:mm:ss`, for the live line. */
function clock(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** `850ms`, `12.3s`, `4m 05s`, `2h 03m 04s`, for the summary. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  if (ms < 60_000) return `${oneDecimal.format(ms / 1000)}s`;
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}h ${String(m).padStart(2, '0')}m ${s}s` : `${m}m ${s}s`;
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${oneDecimal.format(value)} ${BYTE_UNITS[unit]}`;
}
