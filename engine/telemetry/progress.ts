/**
 * What `etl apply` shows while it runs and when it ends. On a terminal: one line redrawn in place, at most
 * every `intervalMs`. Elsewhere (CI logs, files): a plain line every ten seconds, never a carriage return.
 * Then a summary of the run.
 */
import type { RunStats } from './types.ts';

export interface ProgressStream {
  write(chunk: string): unknown;
  /** Terminal width, when known: the live line is cut to it so that it never wraps. */
  readonly columns?: number;
}

export interface ProgressOptions {
  stream: ProgressStream;
  tty: boolean;
  /** Minimum time between two redraws on a terminal; default 250 ms. */
  intervalMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

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

const TTY_INTERVAL_MS = 250;
const LOG_INTERVAL_MS = 10_000;
/** Rates are smoothed over about this long, so the figure is steady but follows a change within seconds. */
const SMOOTHING_MS = 2_000;
const CLEAR_LINE = '\r\x1b[2K';

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const twoDecimals = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });

export function createProgress(options: ProgressOptions): Progress {
  const { stream, tty } = options;
  const now = options.now ?? Date.now;
  const intervalMs = tty ? (options.intervalMs ?? TTY_INTERVAL_MS) : LOG_INTERVAL_MS;
  const startedAt = now();
  const records = new SmoothedRate(startedAt);
  const bytes = new SmoothedRate(startedAt);
  // Off a terminal the first line waits a full interval: short runs print only their summary.
  let lastDrawAt: number | undefined = tty ? undefined : startedAt;
  let lineShown = false;

  return {
    update(stats) {
      const t = now();
      if (lastDrawAt !== undefined && t - lastDrawAt < intervalMs) return;
      lastDrawAt = t;
      records.sample(t, stats.recordsIn);
      bytes.sample(t, stats.bytesRead);
      const line = liveLine(stats, t - startedAt, records.perSecond, bytes.perSecond);
      if (tty) {
        const width = stream.columns;
        stream.write(CLEAR_LINE + (width !== undefined && width > 1 ? line.slice(0, width - 1) : line));
        lineShown = true;
      } else {
        stream.write(`${line}\n`);
      }
    },
    finish(stats, outcome) {
      if (lineShown) stream.write(CLEAR_LINE);
      lineShown = false;
      stream.write(summary(stats, outcome));
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

function liveLine(stats: RunStats, elapsedMs: number, recordRate: number | undefined, byteRate: number | undefined) {
  const parts = [stats.pipeline];
  const total = stats.bytesTotal;
  if (total !== undefined && total > 0) parts.push(`${oneDecimal.format(percent(stats.bytesRead, total))}%`);
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
    ['records written', integer.format(stats.recordsOut)],
    [
      'rejected',
      `${integer.format(stats.rejected)} (${twoDecimals.format(percent(stats.rejected, stats.recordsIn))}% of read)`,
    ],
    ['errors', integer.format(stats.errors)],
    ['duration', duration(stats.elapsedMs)],
    ['average rate', seconds > 0 ? `${integer.format(stats.recordsIn / seconds)} records/s` : '--'],
    [
      'outcome',
      !outcome.ok
        ? `failed${outcome.error ? `: ${outcome.error}` : ''}`
        : outcome.stopped
          ? 'stopped; the next run resumes from the last checkpoint'
          : 'succeeded',
    ],
  ];
  const lines = [`pipeline ${stats.pipeline}`, ...rows.map(([label, value]) => `  ${label.padEnd(17)}${value}`)];
  return `${lines.join('\n')}\n`;
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
