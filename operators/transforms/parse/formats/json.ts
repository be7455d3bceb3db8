/**
 * JSON access logs (nginx `escape=json` templates, or any JSON-lines log): one JSON object per line,
 * fields mapped by key (dotted paths reach into nested objects). Keys no field was taken from go to
 * `extra` with their JSON values.
 */
import { resolveForwarded, TrustedProxies } from '../forwarded.ts';
import { type AccessRecord, emptyAccessRecord } from '../../../shared/log-records.ts';
import { applyRequest, applyUri } from '../request.ts';
import { IsoClock, ZoneOffsets } from '../time/clock.ts';
import { clfInto, epochInto, isoInto } from '../time/stamps.ts';
import { intValue, secondsToMs, upstreamTotalMs } from './numbers.ts';
import type { LineParser } from './template.ts';

/** Record fields a JSON key can be mapped to; `request_time_*` say the unit the log uses. */
export const JSON_TARGETS = [
  'client_ip',
  'ident',
  'user',
  'timestamp',
  'request',
  'method',
  'request_uri',
  'path',
  'query',
  'protocol',
  'status',
  'bytes',
  'bytes_sent',
  'bytes_received',
  'referrer',
  'user_agent',
  'request_time_s',
  'request_time_ms',
  'request_time_us',
  'upstream_addr',
  'upstream_status',
  'upstream_response_time',
  'vhost',
  'port',
] as const;
export type JsonTarget = (typeof JSON_TARGETS)[number];

/** Keys tried for each field when the mapping does not name one: nginx variable names first. */
export const DEFAULT_JSON_KEYS: Readonly<Record<JsonTarget, readonly string[]>> = {
  client_ip: ['remote_addr', 'client_ip', 'clientip', 'client_addr', 'remote_ip', 'ip'],
  ident: ['ident'],
  user: ['remote_user', 'user'],
  timestamp: ['time_iso8601', 'time_local', 'timestamp', '@timestamp', 'time', 'msec', 'date'],
  request: ['request'],
  method: ['request_method', 'method'],
  request_uri: ['request_uri'],
  path: ['uri', 'path', 'document_uri'],
  query: ['args', 'query_string', 'query'],
  protocol: ['server_protocol', 'protocol'],
  status: ['status', 'status_code'],
  bytes: ['body_bytes_sent', 'bytes', 'size'],
  bytes_sent: ['bytes_sent'],
  bytes_received: ['request_length'],
  referrer: ['http_referer', 'referer', 'referrer'],
  user_agent: ['http_user_agent', 'user_agent', 'agent'],
  request_time_s: ['request_time'],
  request_time_ms: ['request_time_ms', 'duration_ms'],
  request_time_us: ['request_time_us', 'duration_us'],
  upstream_addr: ['upstream_addr'],
  upstream_status: ['upstream_status'],
  upstream_response_time: ['upstream_response_time'],
  vhost: ['host', 'server_name', 'vhost'],
  port: ['server_port', 'port'],
};

interface Plan {
  readonly target: JsonTarget;
  /** Candidate keys; each a path of object keys. */
  readonly keys: readonly (readonly string[])[];
}

export class JsonFormat implements LineParser<AccessRecord> {
  readonly name: string;
  private readonly plans: Plan[];
  private readonly clock = new IsoClock();
  private readonly zone: ZoneOffsets;
  private readonly trusted: TrustedProxies;
  private reason = '';

  /** `fields` maps record fields to JSON keys (dotted for nested objects); unmapped fields use the defaults. */
  constructor(
    name: string,
    fields: Readonly<Partial<Record<JsonTarget, string>>>,
    timezone: string,
    trusted: TrustedProxies = new TrustedProxies([]),
  ) {
    this.trusted = trusted;
    this.name = name;
    this.zone = new ZoneOffsets(timezone);
    this.plans = JSON_TARGETS.map((target) => {
      const mapped = fields[target];
      const keys = mapped === undefined ? DEFAULT_JSON_KEYS[target] : [mapped];
      return { target, keys: keys.map((k) => (mapped === undefined ? [k] : k.split('.'))) };
    });
  }

  parse(line: string, end: number): AccessRecord | null {
    let start = 0;
    while (start < end && (line.charCodeAt(start) === 32 || line.charCodeAt(start) === 9)) start++;
    if (line.charCodeAt(start) !== 123 /* { */) return this.fail('the line is not a JSON object');
    let value: unknown;
    try {
      value = JSON.parse(end === line.length && start === 0 ? line : line.slice(start, end));
    } catch (error) {
      return this.fail(`invalid JSON: ${(error as Error).message}`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value))
      return this.fail('the line is not a JSON object');
    const object = value as Record<string, unknown>;
    const rec = emptyAccessRecord();
    const used = new Set<string>();
    let found = false;
    for (const plan of this.plans) {
      for (const path of plan.keys) {
        const v = lookup(object, path);
        if (v === undefined) continue;
        used.add(path[0] as string);
        const problem = this.assign(rec, plan.target, v);
        if (problem !== undefined) return this.fail(`key \`${path.join('.')}\`: ${problem}`);
        if (
          plan.target === 'status' ||
          plan.target === 'request' ||
          plan.target === 'path' ||
          plan.target === 'request_uri'
        ) {
          found = true;
        }
        break;
      }
    }
    if (!found) return this.fail('the JSON object has none of the access-log keys (status, request, uri/path)');
    const extra = rec.extra as Record<string, unknown>;
    for (const key of Object.keys(object)) {
      if (used.has(key)) continue;
      const v = object[key];
      // nginx escape=json writes a missing variable as "" (and the default mode as "-").
      extra[key] = v === '' || v === '-' ? null : v;
    }
    if (!this.trusted.empty) resolveForwarded(rec, this.trusted);
    return rec;
  }

  failure(): string {
    return `${this.name}: ${this.reason}`;
  }

  private fail(reason: string): null {
    this.reason = reason;
    return null;
  }

  /** Sets one field; returns a problem description when the value does not fit. */
  private assign(rec: AccessRecord, target: JsonTarget, raw: unknown): string | undefined {
    const v = raw === '' || raw === '-' ? null : raw;
    switch (target) {
      case 'status':
      case 'bytes':
      case 'bytes_sent':
      case 'bytes_received':
      case 'port': {
        const n = toCount(v);
        if (n === undefined) return `expected a non-negative integer, got ${JSON.stringify(raw)}`;
        rec[target] = n;
        return undefined;
      }
      case 'request_time_s':
      case 'request_time_ms':
      case 'request_time_us': {
        const n = toNumber(v);
        if (n === undefined) return `expected a duration, got ${JSON.stringify(raw)}`;
        if (n === null) rec.request_time_ms = null;
        else if (target === 'request_time_ms') rec.request_time_ms = n;
        else if (target === 'request_time_us') rec.request_time_ms = n / 1000;
        else {
          // Decimal text converts exactly (`0.123` → 123); numbers are rounded to microseconds.
          const exact = typeof v === 'string' ? secondsToMs(v, 0, v.length) : -1;
          rec.request_time_ms = exact >= 0 ? exact : Math.round(n * 1e6) / 1e3;
        }
        return undefined;
      }
      case 'timestamp':
        return this.timestamp(rec, v);
      case 'request':
        applyRequest(rec, toText(v));
        return undefined;
      case 'request_uri':
        if (rec.path === null) applyUri(rec, toText(v));
        return undefined;
      case 'upstream_response_time': {
        const text = toText(v);
        rec.upstream_response_time = text;
        if (text !== null) {
          const total = upstreamTotalMs(text);
          if (Number.isNaN(total)) return `expected upstream times, got ${JSON.stringify(raw)}`;
          rec.upstream_response_time_ms = total < 0 ? null : total;
        }
        return undefined;
      }
      default:
        rec[target] = toText(v);
        return undefined;
    }
  }

  private timestamp(rec: AccessRecord, v: unknown): string | undefined {
    if (v === null) return undefined;
    if (typeof v === 'number') {
      // Epoch seconds (nginx $msec) or milliseconds, told apart by magnitude.
      const ms = v > 1e11 ? Math.round(v) : Math.round(v * 1000);
      const seconds = Math.floor(ms / 1000);
      rec.timestamp = this.clock.iso(seconds, ms - seconds * 1000);
      return undefined;
    }
    if (typeof v !== 'string') return `expected a time, got ${JSON.stringify(v)}`;
    return parseTimeText(rec, v, this.clock, this.zone) ? undefined : `unrecognized time ${JSON.stringify(v)}`;
  }
}

function lookup(object: Record<string, unknown>, path: readonly string[]): unknown {
  let cur: unknown = object;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

function toText(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  return typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
}

function toCount(v: unknown): number | null | undefined {
  if (v === null) return null;
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 ? v : undefined;
  if (typeof v === 'string') {
    const n = intValue(v, 0, v.length);
    return n < 0 ? undefined : n;
  }
  return undefined;
}

function toNumber(v: unknown): number | null | undefined {
  if (v === null) return null;
  if (typeof v === 'number') return v >= 0 ? v : undefined;
  if (typeof v === 'string') {
    const n = Number(v);
    return v.trim() !== '' && Number.isFinite(n) && n >= 0 ? n : undefined;
  }
  return undefined;
}

/**
 * A time written as text: `10/Oct/2000:13:55:36 -0700` (optionally in brackets), ISO-8601 with an offset,
 * `Z` or none (then `zone`), with or without fractional seconds, or epoch seconds `971211336.123`.
 */
export function parseTimeText(rec: AccessRecord, text: string, clock: IsoClock, zone: ZoneOffsets): boolean {
  const bracketed = text.charCodeAt(0) === 91 && text.charCodeAt(text.length - 1) === 93;
  const s = bracketed ? 1 : 0;
  const e = bracketed ? text.length - 1 : text.length;
  if (e - s === 26 && text.charCodeAt(s + 2) === 47) return clfInto(rec, text, s, clock);
  if (e - s >= 19 && text.charCodeAt(s + 4) === 45) return isoInto(rec, text, s, e, clock, zone);
  return epochInto(rec, text, s, e, clock);
}
