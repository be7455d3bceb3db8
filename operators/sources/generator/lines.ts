/**
 * The pure synthetic access-log line maker, shared by the generator source, tests and benchmarks.
 * Line `i` depends only on (options, i): the random stream is reseeded every BLOCK lines from the
 * seed and the block number, so a maker started at `start_index` continues exactly where another left.
 */
import {
  AGENTS,
  CLIENTS,
  DURATIONS,
  ERROR_SIZES,
  JUNK,
  METHODS,
  PATHS,
  PROTOCOLS,
  QUERIES,
  QUERY_RATIO,
  REFERRERS,
  SIZES,
  STATUSES,
  TLS_REQUESTS,
  USERS,
  WRITE_PATHS,
} from './pools.ts';
import { below, type Random, sfc32 } from './random.ts';

import { DEFAULT_START_TIME, type LogFormat } from './schema.ts';

export { DEFAULT_START_TIME, LOG_FORMATS, type LogFormat } from './schema.ts';

export interface LineMakerOptions {
  /** Default `nginx_combined`. */
  readonly format?: LogFormat;
  /** Default 1. Any integer; the same seed gives the same lines. */
  readonly seed?: number;
  /** Share of broken lines, default 0.01. */
  readonly malformed_ratio?: number;
  /** Timestamp of the first line: ISO-8601 text or epoch milliseconds; default 2026-01-01T00:00:00Z. */
  readonly start_time?: string | number;
  /** Simulated request rate that spaces the timestamps, default 100 per second. */
  readonly requests_per_second?: number;
  /** Append `seq=<index>` to the query string of every well-formed line. */
  readonly with_sequence?: boolean;
  /** Index of the first line to make (to continue a sequence), default 0. */
  readonly start_index?: number;
}

export interface LineMaker {
  /** The next line, without newline. */
  next(): string;
  /** Index of the line the next call returns. */
  readonly index: number;
}

/** Lines sharing one reseed of the random stream; resuming replays at most this many. */
const BLOCK = 4096;
const U32 = 4294967296;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

const enumFormat = {
  apache_common: 0,
  apache_combined: 1,
  nginx_combined: 2,
  nginx_combined_request_time: 3,
  nginx_json: 4,
};

export function createLineMaker(options: LineMakerOptions = {}): LineMaker {
  return new Maker(options);
}

class Maker implements LineMaker {
  index: number;
  private readonly format: number;
  private readonly seed: number;
  private readonly malformedBelow: number;
  private readonly startMs: number;
  private readonly gapMs: number;
  private readonly sequence: boolean;
  private rng: Random;
  private second = Number.NaN;
  /** `10/Oct/2026:13:55:36 +0000` of the current second. */
  private clf = '';
  /** `2026-10-10T13:55:36+00:00` of the current second. */
  private iso = '';

  constructor(options: LineMakerOptions) {
    const format = options.format ?? 'nginx_combined';
    if (!(format in enumFormat)) throw new RangeError(`unknown log format ${format}`);
    this.format = enumFormat[format];
    this.seed = Math.trunc(options.seed ?? 1) | 0;
    const ratio = options.malformed_ratio ?? 0.01;
    if (!(ratio >= 0 && ratio <= 1)) throw new RangeError(`malformed_ratio must be within [0, 1], got ${ratio}`);
    this.malformedBelow = ratio * U32;
    const start = options.start_time ?? DEFAULT_START_TIME;
    this.startMs = typeof start === 'number' ? start : Date.parse(start);
    if (!Number.isFinite(this.startMs)) throw new RangeError(`start_time is not a date: ${String(start)}`);
    const rate = options.requests_per_second ?? 100;
    if (!(rate > 0)) throw new RangeError(`requests_per_second must be positive, got ${rate}`);
    this.gapMs = 1000 / rate;
    this.sequence = options.with_sequence === true;
    const first = Math.max(0, Math.trunc(options.start_index ?? 0));
    // Position the random stream at `first`: reseed its block and replay the lines before it.
    this.index = first - (first % BLOCK);
    this.rng = sfc32(this.seed, this.index / BLOCK);
    while (this.index < first) this.next();
  }

  next(): string {
    const i = this.index;
    if (i % BLOCK === 0) this.rng = sfc32(this.seed, i / BLOCK);
    this.index = i + 1;
    const rng = this.rng;
    const timeMs = this.startMs + Math.floor(i * this.gapMs + (rng.next() / U32) * this.gapMs);
    const second = Math.floor(timeMs / 1000);
    if (second !== this.second) this.setSecond(second);
    if (rng.next() < this.malformedBelow) return this.malformed(i, rng);
    const method = METHODS.pick(rng);
    return this.wellFormed(rng, method, this.target(i, rng, method), STATUSES.pick(rng));
  }

  private target(i: number, rng: Random, method: string): string {
    const reads = method === 'GET' || method === 'HEAD' || method === 'OPTIONS';
    const path = reads ? (PATHS[rng.next() >>> 20] as string) : (WRITE_PATHS[rng.next() >>> 24] as string);
    const query = rng.next() < QUERY_RATIO * U32 ? (QUERIES[rng.next() >>> 23] as string) : '';
    if (!this.sequence) return query === '' ? path : path + query;
    return query === '' ? `${path}?seq=${i}` : `${path}${query}&seq=${i}`;
  }

  private wellFormed(rng: Random, method: string, target: string, status: number): string {
    // A skewed pick (u^3): a few clients make many of the requests.
    const u = rng.next() / U32;
    const client = CLIENTS[Math.floor(u * u * u * CLIENTS.length)] as string;
    const user = USERS.pick(rng);
    const protocol = PROTOCOLS.pick(rng);
    const size = method === 'HEAD' ? 0 : sizeFor(status, rng);
    const request = `${method} ${target} ${protocol}`;
    const referrer = REFERRERS.pick(rng);
    const agent = AGENTS.pick(rng);
    const duration = DURATIONS[rng.next() >>> 21] as string;
    switch (this.format) {
      case 0:
        return `${client} - ${user} [${this.clf}] "${request}" ${status} ${size === 0 ? '-' : size}`;
      case 1:
        return `${client} - ${user} [${this.clf}] "${request}" ${status} ${size === 0 ? '-' : size} "${referrer}" "${agent}"`;
      case 2:
        return `${client} - ${user} [${this.clf}] "${request}" ${status} ${size} "${referrer}" "${agent}"`;
      case 3:
        return `${client} - ${user} [${this.clf}] "${request}" ${status} ${size} "${referrer}" "${agent}" ${duration}`;
      default:
        return `{"time":"${this.iso}","remote_addr":"${client}","remote_user":"${user === '-' ? '' : user}","request":"${request}","status":${status},"body_bytes_sent":${size},"request_time":${duration},"http_referer":"${referrer === '-' ? '' : referrer}","http_user_agent":"${agent === '-' ? '' : agent}"}`;
    }
  }

  private malformed(i: number, rng: Random): string {
    const kind = below(rng, 20);
    if (kind < 4) return '';
    if (kind < 8) return JUNK[rng.next() >>> 26] as string;
    if (kind < 13 && this.format !== 4) {
      // A TLS handshake on the plain HTTP port: nginx logs the escaped bytes with a 400.
      const tls = TLS_REQUESTS[rng.next() >>> 27] as string;
      const client = CLIENTS[rng.next() >>> 20] as string;
      const tail = this.format === 0 ? '' : ' "-" "-"';
      return `${client} - - [${this.clf}] "${tls}" 400 157${tail}${this.format === 3 ? ' 0.001' : ''}`;
    }
    // A line cut short (writer killed, disk full, buffer limit).
    const method = METHODS.pick(rng);
    const whole = this.wellFormed(rng, method, this.target(i, rng, method), STATUSES.pick(rng));
    return whole.slice(0, 5 + below(rng, whole.length - 6));
  }

  private setSecond(second: number): void {
    this.second = second;
    const d = new Date(second * 1000);
    const yyyy = d.getUTCFullYear();
    const dd = pad2(d.getUTCDate());
    const hh = pad2(d.getUTCHours());
    const mi = pad2(d.getUTCMinutes());
    const ss = pad2(d.getUTCSeconds());
    this.clf = `${dd}/${MONTHS[d.getUTCMonth()]}/${yyyy}:${hh}:${mi}:${ss} +0000`;
    this.iso = `${yyyy}-${pad2(d.getUTCMonth() + 1)}-${dd}T${hh}:${mi}:${ss}+00:00`;
  }
}

function sizeFor(status: number, rng: Random): number {
  if (status === 304 || status === 204) return 0;
  if (status >= 300) return ERROR_SIZES[rng.next() >>> 26] as number;
  return SIZES[rng.next() >>> 21] as number;
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}
