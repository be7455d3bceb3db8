/**
 * Writes a record as a log line in a compiled format, exactly as the server would: the parser's inverse.
 * Used by property tests (format → parse gives the record back) and to generate benchmark input.
 */
import { escaperFor } from '../text/escape.ts';
import type { AccessRecord } from '../../../shared/log-records.ts';
import { MONTH_ABBR, MONTH_NAMES, WEEKDAY_ABBR, WEEKDAY_NAMES } from '../time/clock.ts';
import { type FieldKind, K, type Token } from './fields.ts';
import type { TemplateFormat } from './template.ts';

const pad2 = (n: number) => (n < 10 ? '0' : '') + n;
const pad = (n: number, width: number) => String(n).padStart(width, '0');

function offsetText(minutes: number, colon: boolean): string {
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  return sign + pad2(Math.floor(abs / 60)) + (colon ? ':' : '') + pad2(abs % 60);
}

export class Formatter {
  private readonly tokens: readonly Token[];
  private readonly escape: (value: string) => string;
  private readonly nullText: string;

  constructor(format: TemplateFormat) {
    this.tokens = format.tokens;
    this.escape = escaperFor(format.dialect, format.escape);
    this.nullText = format.escape === 'json' ? '' : '-';
  }

  format(rec: AccessRecord): string {
    let out = '';
    // Wall-clock time of the record in its own offset, computed once per line.
    let wall: Date | undefined;
    const utcMs = rec.timestamp === null ? Number.NaN : Date.parse(rec.timestamp);
    const offset = rec.timestamp_offset_minutes ?? 0;
    for (const tok of this.tokens) {
      if (tok.type === 'literal') {
        out += tok.text;
        continue;
      }
      if (tok.kind >= K.T_YEAR) {
        wall ??= new Date(utcMs + offset * 60_000);
        out += this.timePart(tok.kind, wall, utcMs, offset);
      } else out += this.field(tok.kind, tok.key, rec, utcMs, offset);
    }
    return out;
  }

  private text(value: unknown): string {
    if (value === null || value === undefined) return this.nullText;
    return this.escape(String(value));
  }

  private number(value: number | null | undefined): string {
    return value === null || value === undefined ? '-' : String(value);
  }

  private field(kind: FieldKind, key: string, rec: AccessRecord, utcMs: number, offset: number): string {
    const extra = rec.extra as Record<string, unknown>;
    switch (kind) {
      case K.CLIENT_IP:
        return this.text(rec.client_ip);
      case K.IDENT:
        return this.text(rec.ident);
      case K.USER:
        return this.text(rec.user);
      case K.TIME_CLF: {
        const d = new Date(utcMs + offset * 60_000);
        return (
          `${pad2(d.getUTCDate())}/${MONTH_ABBR[d.getUTCMonth()]}/${pad(d.getUTCFullYear(), 4)}:` +
          `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())} ${offsetText(offset, false)}`
        );
      }
      case K.TIME_ISO:
        return new Date(utcMs + offset * 60_000).toISOString().slice(0, 19) + offsetText(offset, true);
      case K.TIME_MSEC:
        return `${Math.floor(utcMs / 1000)}.${pad(utcMs % 1000, 3)}`;
      case K.REQUEST:
        return this.text(rec.request);
      case K.METHOD:
        return this.text(rec.method);
      case K.PATH:
        return this.text(rec.path);
      case K.QUERY_Q:
        return rec.query === null ? '' : '?' + this.escape(rec.query);
      case K.ARGS:
        return this.text(rec.query);
      case K.IS_ARGS:
        return rec.query === null ? '' : '?';
      case K.REQUEST_URI:
        return rec.path === null ? this.nullText : this.escape(rec.path + (rec.query === null ? '' : '?' + rec.query));
      case K.PROTOCOL:
        return this.text(rec.protocol);
      case K.STATUS:
        return this.number(rec.status);
      case K.BYTES:
        return this.number(rec.bytes);
      case K.BYTES_SENT:
        return this.number(rec.bytes_sent);
      case K.BYTES_RECEIVED:
        return this.number(rec.bytes_received);
      case K.REFERRER:
        return this.text(rec.referrer);
      case K.USER_AGENT:
        return this.text(rec.user_agent);
      case K.DURATION_US:
        return rec.request_time_ms === null ? '-' : String(Math.round(rec.request_time_ms * 1000));
      case K.DURATION_MS:
        return rec.request_time_ms === null ? '-' : String(Math.round(rec.request_time_ms));
      case K.DURATION_S:
        return rec.request_time_ms === null ? '-' : String(Math.floor(rec.request_time_ms / 1000));
      case K.DURATION_S_FRAC:
        return rec.request_time_ms === null ? this.nullText : (rec.request_time_ms / 1000).toFixed(3);
      case K.UPSTREAM_ADDR:
        return this.text(rec.upstream_addr);
      case K.UPSTREAM_STATUS:
        return this.text(rec.upstream_status);
      case K.UPSTREAM_RESPONSE_TIME:
        return this.text(rec.upstream_response_time);
      case K.VHOST:
        return this.text(rec.vhost);
      case K.PORT:
        return this.number(rec.port);
      case K.EXTRA_TEXT:
        return this.text(extra[key]);
      case K.EXTRA_INT:
        return this.number(extra[key] as number | null | undefined);
      default:
        throw new Error(`formatter: field kind ${kind} is not a record field`);
    }
  }

  private timePart(kind: FieldKind, d: Date, utcMs: number, offset: number): string {
    switch (kind) {
      case K.T_YEAR:
        return pad(d.getUTCFullYear(), 4);
      case K.T_YEAR2:
        return pad2(d.getUTCFullYear() % 100);
      case K.T_MONTH:
        return pad2(d.getUTCMonth() + 1);
      case K.T_MONTH_ABBR:
        return MONTH_ABBR[d.getUTCMonth()] as string;
      case K.T_MONTH_NAME:
        return MONTH_NAMES[d.getUTCMonth()] as string;
      case K.T_DAY:
        return pad2(d.getUTCDate());
      case K.T_DAY_SPACE:
        return String(d.getUTCDate()).padStart(2, ' ');
      case K.T_HOUR:
        return pad2(d.getUTCHours());
      case K.T_MINUTE:
        return pad2(d.getUTCMinutes());
      case K.T_SECOND:
        return pad2(d.getUTCSeconds());
      case K.T_OFFSET:
        return offsetText(offset, false);
      case K.T_WEEKDAY_ABBR:
        return WEEKDAY_ABBR[d.getUTCDay()] as string;
      case K.T_WEEKDAY_NAME:
        return WEEKDAY_NAMES[d.getUTCDay()] as string;
      case K.T_EPOCH_S:
        return String(Math.floor(utcMs / 1000));
      case K.T_EPOCH_MS:
        return String(utcMs);
      case K.T_EPOCH_US:
        return String(utcMs * 1000);
      case K.T_MSEC_FRAC:
        return pad(utcMs % 1000, 3);
      case K.T_USEC_FRAC:
        return pad((utcMs % 1000) * 1000, 6);
      default:
        return offset === 0 ? 'UTC' : offsetText(offset, false);
    }
  }
}
