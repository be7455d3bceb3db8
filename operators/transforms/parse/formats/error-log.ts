/**
 * Apache and nginx error logs. Both write local time without an offset; it is read in `timezone`.
 *   Apache 2.4: [Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187:5412] AH00128: File does not exist: /favicon.ico, referer: http://example.com/
 *   Apache 2.2: [Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] client denied by server configuration: /export/home/live/ap/htdocs/test
 *   nginx:      2011/09/09 10:42:29 [error] 1234#0: *99 open() "/favicon.ico" failed (2: No such file or directory), client: 1.2.3.4, server: localhost, request: "GET /favicon.ico HTTP/1.1", host: "localhost"
 * Error logs are low volume; clarity wins over speed here (regular expressions are fine).
 */
import type { ErrorLogRecord } from '../../../shared/log-records.ts';
import { IsoClock, localSeconds, monthFromAbbr, twoDigits, validDateTime, ZoneOffsets } from '../time/clock.ts';
import { intValue } from './numbers.ts';
import type { LineParser } from './template.ts';

export type ErrorLogFormatName = 'apache_error' | 'nginx_error' | 'error_log';

function emptyErrorRecord(server: 'apache' | 'nginx'): ErrorLogRecord {
  return {
    server,
    timestamp: null,
    timestamp_offset_minutes: null,
    level: null,
    module: null,
    pid: null,
    tid: null,
    connection_id: null,
    client_ip: null,
    client_port: null,
    code: null,
    message: '',
    request: null,
    upstream: null,
    host: null,
    referrer: null,
    raw_base64: null,
  };
}

const APACHE_HEAD = /^\[([^\]]+)\] \[(?:([\w-]*):)?(\w+)\](?: \[pid (\d+)(?::tid (\d+))?\])? ?/;
const APACHE_CLIENT = / ?\[(?:client|remote) ([^\]]+)\]/;
const APACHE_CODE = /^(AH\d{5}): /;
const NGINX_HEAD = /^(\d{4})\/(\d\d)\/(\d\d) (\d\d):(\d\d):(\d\d) \[(\w+)\] (\d+)#(\d+): (?:\*(\d+) )?/;
const NGINX_CONTEXT = /, (client|server|request|subrequest|upstream|host|referrer): ("(?:[^"\\]|\\.)*"|[^,]*)/g;

export class ErrorLogFormat implements LineParser<ErrorLogRecord> {
  readonly name: ErrorLogFormatName;
  private readonly clock = new IsoClock();
  private readonly zone: ZoneOffsets;
  private reason = '';

  constructor(name: ErrorLogFormatName, timezone: string) {
    this.name = name;
    this.zone = new ZoneOffsets(timezone);
  }

  parse(line: string, end: number): ErrorLogRecord | null {
    const text = end === line.length ? line : line.slice(0, end);
    const first = text.charCodeAt(0);
    if (first === 91 /* [ */ && this.name !== 'nginx_error') return this.apache(text);
    if (first >= 48 && first <= 57 && this.name !== 'apache_error') return this.nginx(text);
    return this.fail(
      this.name === 'apache_error'
        ? 'expected `[` and the time at column 1'
        : this.name === 'nginx_error'
          ? 'expected the time `yyyy/mm/dd HH:MM:SS` at column 1'
          : 'expected an Apache (`[time]`) or nginx (`yyyy/mm/dd`) error log entry at column 1',
    );
  }

  failure(): string {
    return `${this.name}: ${this.reason}`;
  }

  private fail(reason: string): null {
    this.reason = reason;
    return null;
  }

  private apache(text: string): ErrorLogRecord | null {
    const head = APACHE_HEAD.exec(text);
    if (!head) return this.fail('expected `[time] [module:level]` at the start of the line');
    const rec = emptyErrorRecord('apache');
    if (!this.apacheTime(rec, head[1] as string)) return this.fail(`invalid time \`${head[1]}\` at column 2`);
    rec.module = head[2] || null;
    rec.level = head[3] as string;
    rec.pid = head[4] === undefined ? null : Number(head[4]);
    rec.tid = head[5] === undefined ? null : Number(head[5]);
    let message = text.slice(head[0].length);
    const client = APACHE_CLIENT.exec(message);
    if (client) {
      const [ip, port] = splitAddress(client[1] as string);
      rec.client_ip = ip;
      rec.client_port = port;
      const before = message.slice(0, client.index);
      let after = message.slice(client.index + client[0].length).replace(/^ /, '');
      // mod_proxy writes its own status first: `(70008)Partial results…: [client …] AH01075: …`.
      const code = before === '' ? null : APACHE_CODE.exec(after);
      if (code) {
        rec.code = code[1] as string;
        after = after.slice(code[0].length);
      }
      message = before === '' ? after : `${before} ${after}`;
    }
    const code = rec.code === null ? APACHE_CODE.exec(message) : null;
    if (code) {
      rec.code = code[1] as string;
      message = message.slice(code[0].length);
    }
    const referer = message.lastIndexOf(', referer: ');
    if (referer >= 0) {
      rec.referrer = message.slice(referer + 11);
      message = message.slice(0, referer);
    }
    rec.message = message;
    return rec;
  }

  /** `Fri Sep 09 10:42:29.902022 2011` or `Wed Oct 11 14:32:52 2000` */
  private apacheTime(rec: ErrorLogRecord, t: string): boolean {
    const month = monthFromAbbr(t, 4);
    const day = t.charCodeAt(8) === 32 ? twoDigits('0' + t[9], 0) : twoDigits(t, 8);
    const hour = twoDigits(t, 11);
    const minute = twoDigits(t, 14);
    const second = twoDigits(t, 17);
    let i = 19;
    let millis = 0;
    if (t.charCodeAt(i) === 46) {
      let j = i + 1;
      while (j < t.length && t.charCodeAt(j) >= 48 && t.charCodeAt(j) <= 57) j++;
      const digits = Math.min(3, j - i - 1);
      millis = digits > 0 ? intValue(t, i + 1, i + 1 + digits) * 10 ** (3 - digits) : 0;
      i = j;
    }
    if (t.charCodeAt(i) !== 32) return false;
    const year = intValue(t, i + 1, t.length);
    if (!validDateTime(year, month, day, hour, minute, second)) return false;
    this.setTime(rec, localSeconds(year, month, day, hour, minute, second), millis);
    return true;
  }

  private nginx(text: string): ErrorLogRecord | null {
    const head = NGINX_HEAD.exec(text);
    if (!head) return this.fail('expected `yyyy/mm/dd HH:MM:SS [level] pid#tid: ` at the start of the line');
    const [, y, mo, d, h, mi, s] = head.map(Number) as number[];
    if (!validDateTime(y as number, mo as number, d as number, h as number, mi as number, s as number)) {
      return this.fail(`invalid time \`${text.slice(0, 19)}\` at column 1`);
    }
    const rec = emptyErrorRecord('nginx');
    this.setTime(rec, localSeconds(y as number, mo as number, d as number, h as number, mi as number, s as number), 0);
    rec.level = head[7] as string;
    rec.pid = Number(head[8]);
    rec.tid = Number(head[9]);
    rec.connection_id = head[10] === undefined ? null : Number(head[10]);
    let message = text.slice(head[0].length);
    const context = message.lastIndexOf(', client: ');
    if (context >= 0) {
      const tail = message.slice(context);
      message = message.slice(0, context);
      for (const m of tail.matchAll(NGINX_CONTEXT)) {
        const raw = m[2] as string;
        const value = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw;
        switch (m[1]) {
          case 'client':
            rec.client_ip = value;
            break;
          case 'server':
            rec.host ??= value;
            break;
          case 'request':
            rec.request = value;
            break;
          case 'upstream':
            rec.upstream = value;
            break;
          case 'host':
            rec.host = value;
            break;
          case 'referrer':
            rec.referrer = value;
            break;
        }
      }
    }
    rec.message = message;
    return rec;
  }

  private setTime(rec: ErrorLogRecord, local: number, millis: number): void {
    const offset = this.zone.offsetForLocal(local);
    rec.timestamp = this.clock.iso(local - offset * 60, millis);
    rec.timestamp_offset_minutes = this.zone.utc ? null : offset;
  }
}

/** `1.2.3.4:5678`, `[::1]:5678`, `::1:5678` (Apache 2.4 writes IPv6 unbracketed with the port) → ip, port. */
function splitAddress(text: string): [string, number | null] {
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    const port = text.charCodeAt(close + 1) === 58 ? intValue(text, close + 2, text.length) : -1;
    return [text.slice(1, close), port < 0 ? null : port];
  }
  const colon = text.lastIndexOf(':');
  const dots = text.indexOf('.') >= 0;
  const colons = text.indexOf(':') !== colon;
  // IPv4:port, or IPv6 followed by :port (Apache 2.4); a bare IPv6 address has no port to split.
  if (colon > 0 && (dots || colons)) {
    const port = intValue(text, colon + 1, text.length);
    if (port >= 0 && port <= 65535 && (dots ? !colons : isIpv6(text.slice(0, colon))))
      return [text.slice(0, colon), port];
  }
  return [text, null];
}

function isIpv6(text: string): boolean {
  return /^[0-9a-fA-F:]+$/.test(text) && (text.includes('::') || text.split(':').length === 8);
}
