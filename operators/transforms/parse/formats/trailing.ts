/**
 * Fields a server appends after a format's closing quote (the agent of combined, as most nginx
 * installations do: `"$http_x_forwarded_for" $request_time $upstream_response_time …`). Each is a quoted
 * value, a bare token (items joined by `, ` or ` : ` stay one value), or `key=value` / `key="value"`.
 * Recognisable ones are named, in order of appearance:
 *   - `key=…`: `rt`/`request_time` → request_time_ms, `urt`/`upstream_response_time`, `ua`/`upstream_addr`,
 *     `us`/`upstream_status`; any other key → extra[key];
 *   - the first address list (or `"-"`) before any time → extra.http_x_forwarded_for;
 *   - seconds with a millisecond fraction (`0.123`): request time, then upstream response time (lists too);
 *   - `host:port` lists → upstream_addr; status lists (`200, 502`) after the upstream time → upstream_status
 *     (nginx ingress: `$upstream_addr $upstream_response_length $upstream_response_time $upstream_status`);
 *   - `.` or `p` → extra.pipe.
 * The others land in extra as `trailing_<n>` (n counts from 1 after the last field of the format),
 * integers as numbers, `-` as null.
 */
import { isIP } from 'node:net';
import type { AccessRecord } from '../../../shared/log-records.ts';
import { closingQuote } from '../text/quote.ts';
import { unescapeRange } from '../text/unescape.ts';
import { intValue, secondsToMs, upstreamTotalMs } from './numbers.ts';

const SECONDS = /^\d+\.\d{3}$/;
const SECONDS_LIST = /^(?:\d+\.\d{3}|-)(?:(?:, | : )(?:\d+\.\d{3}|-))*$/;
const ENDPOINT = /^(?:\[[0-9A-Fa-f:.]+\]:\d+|[A-Za-z0-9.-]+:\d+|unix:\S+)$/;
const STATUS_LIST = /^(?:[1-5]\d\d|-)(?:(?:, | : )(?:[1-5]\d\d|-))*$/;
const KEY = /^[A-Za-z_][A-Za-z0-9_]*=/;

const KEYS: Readonly<Record<string, string>> = {
  rt: 'request_time',
  request_time: 'request_time',
  urt: 'upstream_response_time',
  upstream_response_time: 'upstream_response_time',
  ua: 'upstream_addr',
  upstream_addr: 'upstream_addr',
  us: 'upstream_status',
  upstream_status: 'upstream_status',
};

function text(line: string, s: number, e: number, escaped: boolean): string {
  if (escaped) {
    const b = line.indexOf('\\', s);
    if (b >= 0 && b < e) return unescapeRange(line, s, e);
  }
  return line.slice(s, e);
}

/** End of a bare token starting at `i`: a space ends it unless the token continues a list. */
function bareEnd(line: string, i: number, end: number): number {
  let j = i;
  for (;;) {
    while (j < end && line.charCodeAt(j) !== 32 && line.charCodeAt(j) !== 34) j++;
    if (j >= end || line.charCodeAt(j) !== 32) return j;
    // `a, b` and `a : b` are one value (nginx upstream lists).
    if (line.charCodeAt(j - 1) === 44 && j + 1 < end) {
      j++;
      continue;
    }
    if (line.charCodeAt(j + 1) === 58 && line.charCodeAt(j + 2) === 32 && j + 3 < end) {
      j += 3;
      continue;
    }
    return j;
  }
}

function isAddressList(value: string): boolean {
  for (const raw of value.split(',')) {
    const item = raw.trim();
    if (item !== 'unknown' && isIP(item) === 0) return false;
  }
  return true;
}

class Naming {
  private readonly rec: AccessRecord;
  private readonly extra: Record<string, unknown>;
  private sawTime = false;
  private sawUpstreamTime = false;
  private sawUpstreamAddr = false;
  private sawUpstreamStatus = false;

  constructor(rec: AccessRecord) {
    this.rec = rec;
    this.extra = rec.extra as Record<string, unknown>;
  }

  keyed(key: string, value: string | null): boolean {
    const name = KEYS[key];
    if (name === 'request_time') return this.requestTime(value);
    if (name === 'upstream_response_time') return this.upstreamTime(value);
    if (name === 'upstream_addr') {
      this.rec.upstream_addr = value;
      this.sawUpstreamAddr = true;
    } else if (name === 'upstream_status') {
      this.rec.upstream_status = value;
      this.sawUpstreamStatus = true;
    } else this.extra[key] = value;
    return true;
  }

  positional(value: string, quoted: boolean, n: number): void {
    const rec = this.rec;
    if (!this.sawTime && !('http_x_forwarded_for' in this.extra) && (value === '-' ? quoted : isAddressList(value))) {
      this.extra.http_x_forwarded_for = value === '-' ? null : value;
      return;
    }
    if (SECONDS.test(value) && !this.sawTime) {
      this.requestTime(value);
      return;
    }
    if (this.sawTime && !this.sawUpstreamTime && value !== '-' && SECONDS_LIST.test(value)) {
      this.upstreamTime(value);
      return;
    }
    if (!this.sawUpstreamAddr && rec.upstream_addr === null && value.split(/, | : /).every((v) => ENDPOINT.test(v))) {
      rec.upstream_addr = value;
      this.sawUpstreamAddr = true;
      return;
    }
    if (this.sawUpstreamTime && !this.sawUpstreamStatus && value !== '-' && STATUS_LIST.test(value)) {
      rec.upstream_status = value;
      this.sawUpstreamStatus = true;
      return;
    }
    if (!quoted && (value === '.' || value === 'p') && !('pipe' in this.extra)) {
      this.extra.pipe = value;
      return;
    }
    const int = quoted ? -1 : intValue(value, 0, value.length);
    this.extra[`trailing_${n}`] = value === '-' ? null : int >= 0 && value.length < 16 ? int : value;
  }

  private requestTime(value: string | null): boolean {
    this.sawTime = true;
    if (value === null) return true;
    const ms = secondsToMs(value, 0, value.length);
    if (ms < 0) return false;
    this.rec.request_time_ms = ms;
    return true;
  }

  private upstreamTime(value: string | null): boolean {
    this.sawUpstreamTime = true;
    this.rec.upstream_response_time = value;
    if (value === null) return true;
    const total = upstreamTotalMs(value);
    if (Number.isNaN(total)) return false;
    this.rec.upstream_response_time_ms = total < 0 ? null : total;
    return true;
  }
}

/**
 * Parses `line[pos, end)`, the text after the format's last field, into `rec`. Returns the number of
 * fields found, or -1 when the text is not a sequence of fields (an unescaped quote, say).
 */
export function applyTrailing(rec: AccessRecord, line: string, pos: number, end: number, escaped: boolean): number {
  const naming = new Naming(rec);
  let n = 0;
  let i = pos;
  while (i < end) {
    if (line.charCodeAt(i) !== 32 && line.charCodeAt(i) !== 9) return -1;
    while (i < end && (line.charCodeAt(i) === 32 || line.charCodeAt(i) === 9)) i++;
    if (i >= end) break;
    n++;
    if (line.charCodeAt(i) === 34) {
      const q = closingQuote(line, i + 1, end, escaped);
      if (q < 0) return -1;
      naming.positional(text(line, i + 1, q, escaped), true, n);
      i = q + 1;
      continue;
    }
    const j = bareEnd(line, i, end);
    const key = KEY.exec(line.slice(i, Math.min(j, i + 40)));
    if (key !== null) {
      const at = i + key[0].length;
      let value: string;
      if (at === j && line.charCodeAt(j) === 34) {
        const q = closingQuote(line, j + 1, end, escaped);
        if (q < 0) return -1;
        value = text(line, j + 1, q, escaped);
        i = q + 1;
      } else {
        value = text(line, at, j, escaped);
        i = j;
      }
      if (!naming.keyed(key[0].slice(0, -1), value === '-' ? null : value)) return -1;
      continue;
    }
    if (j < end && line.charCodeAt(j) === 34) return -1;
    naming.positional(text(line, i, j, escaped), false, n);
    i = j;
  }
  return n;
}
