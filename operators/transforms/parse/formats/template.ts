/**
 * A log format compiled from Apache or nginx tokens into a scanner program: per field, how its end is
 * found (fixed width, a quote, the next literal, a character class) and which record field it fills.
 * Parsing walks the program with indexOf/charCodeAt; no regular expressions, no Date parsing, one new
 * record per line.
 */
import { EtlError } from '../../../../engine/errors.ts';
import { resolveForwarded, TrustedProxies } from '../forwarded.ts';
import { type AccessRecord, emptyAccessRecord } from '../../../shared/log-records.ts';
import { applyRequest, applyUri } from '../request.ts';
import { closingQuote, isEscaped } from '../text/quote.ts';
import { unescapeRange } from '../text/unescape.ts';
import { clfInto, epochInto, isoInto } from '../time/stamps.ts';
import { applyAddressSegment } from './address.ts';
import { intValue, secondsToMs, upstreamTotalMs } from './numbers.ts';
import { applyTrailing } from './trailing.ts';
import {
  IsoClock,
  localSeconds,
  MONTH_NAMES,
  monthFromAbbr,
  offsetAt,
  twoDigits,
  validDateTime,
  ZoneOffsets,
} from '../time/clock.ts';
import { type Dialect, type EscapeMode, type FieldKind, K, KIND_INFO, SCAN, type Token } from './fields.ts';

/** A compiled format: one line in, one record (or null with a reason) out. */
export interface LineParser<R> {
  readonly name: string;
  /**
   * Parses `line[0, end)`. `lenient` retries lines the servers' own escaping rules reject: quotes inside
   * quoted values that were not escaped, trailing blanks.
   */
  parse(line: string, end: number, lenient: boolean): R | null;
  /** Why the last `parse` returned null. */
  failure(): string;
}

// How a field's end is found.
const E_FIXED = 0;
const E_LITERAL = 1;
const E_QUOTE = 2;
const E_EOL = 3;
const E_DIGITS = 4;
const E_DECIMAL = 5;
const E_ALPHA = 6;
const E_LIST = 7;
const E_QMARK = 8;
/** A path followed directly by `%q` / `$is_args`: ends at `?` or where the group ends. */
const E_PATH = 9;
/**
 * The client address of `%h %l %u %t` / `$remote_addr - $remote_user [$time_local]`: one address up to
 * the space before the ident, or (forwarding lists, a leading virtual host) everything before it.
 */
const E_ADDRESS = 10;
/** Tolerant variant only: a value written quoted, or as a bare `-`. */
const E_QFIELD = 11;

/** Fields whose value is plain text (`text()`), stored directly by the compiled parser. */
const TEXT_FIELDS: ReadonlyMap<FieldKind, string> = new Map<FieldKind, string>([
  [K.IDENT, 'ident'],
  [K.USER, 'user'],
  [K.METHOD, 'method'],
  [K.PATH, 'path'],
  [K.PROTOCOL, 'protocol'],
  [K.REFERRER, 'referrer'],
  [K.USER_AGENT, 'user_agent'],
  [K.UPSTREAM_ADDR, 'upstream_addr'],
  [K.UPSTREAM_STATUS, 'upstream_status'],
  [K.VHOST, 'vhost'],
]);

// Why a line did not match.
const F_LITERAL = 1;
const F_NO_END = 2;
const F_VALUE = 3;
const F_TRAILING = 4;

export interface TemplateOptions {
  readonly name: string;
  readonly dialect: Dialect;
  readonly escape: EscapeMode;
  /** Zone for times logged without an offset. */
  readonly timezone: string;
  /** Proxies whose addresses are skipped when choosing client_ip from a forwarding chain. */
  readonly trusted?: TrustedProxies;
  /**
   * The tolerant variant: quoted values may be written as a bare `-`, and fields appended after the
   * format's closing quote are kept (see trailing.ts) instead of failing the line.
   */
  readonly tolerant?: boolean;
}

const NO_PROXIES = new TrustedProxies([]);

export function formatError(message: string): EtlError {
  return new EtlError('ETL_CFG_INVALID', message);
}

export class TemplateFormat implements LineParser<AccessRecord> {
  readonly name: string;
  readonly dialect: Dialect;
  readonly escape: EscapeMode;
  readonly tokens: readonly Token[];
  /** Literal text before the first field. */
  private readonly lead: string;
  private readonly kinds: FieldKind[] = [];
  private readonly keys: string[] = [];
  private readonly directives: string[] = [];
  private readonly ends: number[] = [];
  private readonly widths: number[] = [];
  /** Literal right after each field ('' when a field or the end of the line follows). */
  private readonly afters: string[] = [];
  /** First char code of `afters` when it cannot start a list item (a space does), else -1. */
  private readonly stops: number[] = [];
  /** For E_PATH: the literal ending the adjacent group ('' for the end of the line). */
  private readonly bounds: string[] = [];
  /** For E_PATH before `$is_args$args`: nginx writes `-` for a missing $args, right after the path. */
  private readonly dashArgs: boolean[] = [];
  /** Whether each `after` literal is the last text of the format (so it must end the line). */
  private readonly finals: boolean[] = [];
  /** For E_ADDRESS: the field opens the format, so a leading host name in it is the virtual host. */
  private readonly hostFirst: boolean[] = [];
  /** For E_ADDRESS: `%l %u` (2) or ` - $remote_user` (1) sit between the address and ` [`. */
  private readonly addressShape: number[] = [];
  readonly tolerant: boolean;
  private readonly trusted: TrustedProxies;
  /** X-Forwarded-For is resolved into client_ip after the line (trusted_proxies set, the format logs it). */
  private readonly resolvesForwarded: boolean;
  private readonly options: TemplateOptions;
  /** Fields the tolerant variant found after the format's end in the last line it parsed. */
  trailingFields = 0;
  /** Whether the interpreter took the multi-address path for the current E_ADDRESS field. */
  private addressSlow = false;
  private readonly hasTimeParts: boolean;
  private readonly jsonEscape: boolean;
  private readonly clock = new IsoClock();
  private readonly zone: ZoneOffsets;
  private readonly compiled: (line: string, end: number, lenient: boolean) => AccessRecord | null;

  // Scratch for times assembled from strftime components; reset per line.
  private tYear = 0;
  private tMonth = 0;
  private tDay = 0;
  private tHour = 0;
  private tMinute = 0;
  private tSecond = 0;
  private tMillis = 0;
  private tOffset = Number.NaN;
  private tEpochMs = Number.NaN;

  // Why the last parse failed.
  private failCode = 0;
  private failField = 0;
  private failPos = 0;
  private failEnd = 0;
  private failLine = '';

  constructor(tokens: readonly Token[], options: TemplateOptions) {
    this.name = options.name;
    this.dialect = options.dialect;
    this.escape = options.escape;
    this.jsonEscape = options.escape === 'json';
    this.zone = new ZoneOffsets(options.timezone);
    this.options = options;
    this.tolerant = options.tolerant === true;
    this.trusted = options.trusted ?? NO_PROXIES;
    this.tokens = mergeLiterals(tokens);
    const quotedFields = this.tolerant ? unquotedTokens(this.tokens) : undefined;
    const toks = quotedFields === undefined ? this.tokens : quotedFields.tokens;
    this.resolvesForwarded =
      !this.trusted.empty &&
      (this.tolerant ||
        toks.some((t) => t.type === 'field' && t.kind === K.EXTRA_TEXT && t.key === 'http_x_forwarded_for'));
    let i = 0;
    let lead = '';
    if (toks[0]?.type === 'literal') {
      lead = toks[0].text;
      i = 1;
    }
    this.lead = lead;
    if (i >= toks.length) {
      throw formatError(
        `the ${options.dialect} format has no ${options.dialect === 'apache' ? 'directive' : 'variable'}`,
      );
    }
    let previousLiteral = lead;
    let timeParts = false;
    for (; i < toks.length; i++) {
      const tok = toks[i] as Token;
      if (tok.type === 'literal') {
        previousLiteral = tok.text;
        continue;
      }
      const next = toks[i + 1];
      const after = next?.type === 'literal' ? next.text : '';
      const info = KIND_INFO[tok.kind];
      if (info.timePart) timeParts = true;
      let end: number;
      let bound = '';
      let dashArgs = false;
      const shape = tok.kind === K.CLIENT_IP && after !== '' ? addressShape(toks, i) : 0;
      if (quotedFields?.fields.has(tok)) end = E_QFIELD;
      else if (shape > 0) end = E_ADDRESS;
      else if (info.scan === SCAN.FIXED) end = E_FIXED;
      else if (info.scan === SCAN.OPTIONAL_QMARK) end = E_QMARK;
      else if (info.scan === SCAN.LIST) end = E_LIST;
      else if (next === undefined) end = E_EOL;
      else if (after !== '') {
        end = previousLiteral.endsWith('"') && after.startsWith('"') && info.scan === SCAN.TEXT ? E_QUOTE : E_LITERAL;
      } else if (next.type === 'field' && tok.kind === K.PATH && (next.kind === K.QUERY_Q || next.kind === K.IS_ARGS)) {
        end = E_PATH;
        bound = literalAfterGroup(toks, i);
        const third = toks[i + 2];
        // escape=json writes nothing, not `-`, for a missing variable.
        dashArgs = next.kind === K.IS_ARGS && third?.type === 'field' && third.kind === K.ARGS && !this.jsonEscape;
      } else if (info.scan === SCAN.DIGITS) end = E_DIGITS;
      else if (info.scan === SCAN.DECIMAL) end = E_DECIMAL;
      else if (info.scan === SCAN.ALPHA) end = E_ALPHA;
      else {
        const other = next as Extract<Token, { type: 'field' }>;
        throw formatError(
          `${tok.directive} at column ${tok.column} and ${other.directive} at column ${other.column} have no text ` +
            'between them, so where one ends cannot be told; put a separator between them',
        );
      }
      this.kinds.push(tok.kind);
      this.keys.push(tok.key);
      this.directives.push(tok.directive);
      this.ends.push(end);
      this.widths.push(info.width);
      this.afters.push(after);
      this.stops.push(after === '' || after.charCodeAt(0) === 32 ? -1 : after.charCodeAt(0));
      this.bounds.push(bound);
      this.dashArgs.push(dashArgs);
      this.finals.push(after !== '' && i + 2 >= toks.length);
      this.hostFirst.push(i === 0);
      this.addressShape.push(shape);
      previousLiteral = '';
    }
    this.hasTimeParts = timeParts;
    if (timeParts) checkTimeParts(this.tokens, options.dialect);
    this.compiled = this.compile();
  }

  /** Fields of the format: the more a format explains of a line, the more specific it is. */
  get fieldCount(): number {
    return this.kinds.length;
  }

  /**
   * The tolerant variant of this format (bare `-` for quoted values, fields appended after the end kept),
   * for formats that end with a quoted value; undefined for the others.
   */
  tolerantVariant(): TemplateFormat | undefined {
    if (this.tolerant) return this;
    const toks = this.tokens;
    const last = toks[toks.length - 1];
    const value = toks[toks.length - 2];
    const before = toks[toks.length - 3];
    if (last?.type !== 'literal' || last.text !== '"' || value?.type !== 'field' || before?.type !== 'literal')
      return undefined;
    if (!before.text.endsWith('"') || KIND_INFO[value.kind].scan !== SCAN.TEXT) return undefined;
    try {
      return new TemplateFormat(toks, { ...this.options, tolerant: true });
    } catch {
      return undefined;
    }
  }

  /**
   * The field loop of `parseInterpreted` unrolled for this format, once: each field's end search and
   * literal check with its constants inlined, text fields stored directly; every other value still
   * goes through `convert` except the commonest (address, CLF time, request, status, bytes). Literals reach
   * the code only as JSON string literals.
   */
  private compile(): (line: string, end: number, lenient: boolean) => AccessRecord | null {
    const lit = (text: string) => JSON.stringify(text);
    const out: string[] = [
      'return function parse(line, end, lenient) {',
      'if (lenient) { while (end > 0) { const c = line.charCodeAt(end - 1); if (c !== 32 && c !== 9) break; end--; } }',
    ];
    if (this.lead !== '')
      out.push(`if (!line.startsWith(${lit(this.lead)}, 0)) return this.fail(${F_LITERAL}, -1, 0, line);`);
    out.push(
      "const escaped = line.indexOf('\\\\') !== -1;",
      'const rec = emptyAccessRecord();',
      this.hasTimeParts ? 'this.resetTime();' : '',
      `let pos = ${this.lead.length};`,
      'let e = 0;',
      'let q = 0;',
      'let m = false;',
    );
    for (let f = 0; f < this.kinds.length; f++) {
      const after = this.afters[f] as string;
      const noEnd = `return this.fail(${F_NO_END}, ${f}, pos, line);`;
      switch (this.ends[f]) {
        case E_FIXED:
          out.push(`e = pos + ${this.widths[f]}; if (e > end) ${noEnd}`);
          break;
        case E_LITERAL:
          out.push(
            this.finals[f] ? `e = end - ${after.length};` : `e = line.indexOf(${lit(after)}, pos);`,
            `if (e < pos || e > end) ${noEnd}`,
          );
          break;
        case E_QUOTE:
          out.push(
            `e = lenient ? this.lenientQuote(line, pos, end, ${f}, escaped) : closingQuote(line, pos, end, escaped);`,
            `if (e < 0) ${noEnd}`,
          );
          break;
        case E_EOL:
          out.push('e = end;');
          break;
        case E_DIGITS:
        case E_DECIMAL:
        case E_ALPHA:
          // scanClass's classes 0, 1, 2 are E_DIGITS, E_DECIMAL, E_ALPHA in order.
          out.push(`e = scanClass(line, pos, end, ${(this.ends[f] as number) - E_DIGITS});`);
          break;
        case E_LIST:
          out.push(`e = scanList(line, pos, end, ${this.stops[f]});`);
          break;
        case E_QMARK:
          out.push('e = pos < end && line.charCodeAt(pos) === 63 ? pos + 1 : pos;');
          break;
        case E_ADDRESS:
          out.push(
            "e = line.indexOf(' ', pos);",
            // Inline `multiAddress`: one address followed by the ident's (or nginx's) `-` is the common case.
            'm = e < pos || e >= end || line.charCodeAt(e + 1) !== 45 || line.charCodeAt(e - 1) === 44 || line.charCodeAt(pos) === 34;',
            `if (m) { e = this.addressEnd(line, pos, end, ${f}); if (e < pos || e > end) ${noEnd} }`,
          );
          break;
        case E_QFIELD:
          out.push(
            `q = this.qfieldEnd(line, pos, end, escaped); if (q < 0) ${noEnd}`,
            'if (q > 0) { pos++; e = q; q = 1; } else { e = pos + 1; }',
          );
          break;
        default:
          out.push(`e = this.pathEnd(line, pos, end, ${f});`);
      }
      const kind = this.kinds[f] as FieldKind;
      const field = TEXT_FIELDS.get(kind);
      const bad = `return this.fail(${F_VALUE}, ${f}, pos, line, e);`;
      if (field !== undefined) out.push(`rec.${field} = this.text(line, pos, e, escaped);`);
      else if (kind === K.CLIENT_IP && this.ends[f] === E_ADDRESS) {
        out.push(
          `if (m) { if (!this.address(rec, line, pos, e, ${f}, escaped)) ${bad} }`,
          `else if (line.charCodeAt(pos) === 91) { if (!bracketedAddress(rec, line, pos, e)) ${bad} }`,
          'else rec.client_ip = this.text(line, pos, e, escaped);',
        );
      } else if (kind === K.CLIENT_IP) {
        out.push(
          `if (line.charCodeAt(pos) === 91) { if (!bracketedAddress(rec, line, pos, e)) ${bad} }`,
          'else rec.client_ip = this.text(line, pos, e, escaped);',
        );
      } else if (kind === K.TIME_CLF) out.push(`if (!clfInto(rec, line, pos, this.clock)) ${bad}`);
      else if (kind === K.REQUEST) out.push('applyRequest(rec, this.text(line, pos, e, escaped));');
      else if (kind === K.STATUS || kind === K.BYTES) {
        const name = kind === K.STATUS ? 'status' : 'bytes';
        out.push(`rec.${name} = this.count(line, pos, e); if (rec.${name} === -1) ${bad}`);
      } else out.push(`if (!this.convert(rec, ${f}, line, pos, e, escaped)) ${bad}`);
      out.push(this.ends[f] === E_QFIELD ? 'pos = e + q;' : 'pos = e;');
      if (after !== '') {
        out.push(
          `if (!line.startsWith(${lit(after)}, pos)) return this.fail(${F_LITERAL}, ${f}, pos, line);`,
          `pos += ${after.length};`,
        );
      }
    }
    const last = this.kinds.length - 1;
    out.push(
      this.tolerant
        ? `if (!this.trailing(rec, line, pos, end, escaped)) return this.fail(${F_TRAILING}, ${last}, pos, line);`
        : `if (pos !== end) return this.fail(${F_TRAILING}, ${last}, pos, line);`,
      this.resolvesForwarded ? 'resolveForwarded(rec, this.trusted);' : '',
      this.hasTimeParts ? `if (!this.finishTime(rec)) return this.fail(${F_VALUE}, -1, 0, line);` : '',
      'return rec;',
      '};',
    );
    const helpers = {
      emptyAccessRecord,
      closingQuote,
      scanClass,
      scanList,
      bracketedAddress,
      clfInto,
      applyRequest,
      resolveForwarded,
    };
    const factory = new Function(...Object.keys(helpers), out.join('\n'));
    return factory(...Object.values(helpers)).bind(this);
  }

  /** E_PATH: a path ends at `?` or where its group ends (nginx's `-` for missing $args excluded). */
  private pathEnd(line: string, pos: number, end: number, f: number): number {
    const bound = this.bounds[f] as string;
    let limit = bound === '' ? end : line.indexOf(bound, pos);
    if (limit < 0 || limit > end) limit = end;
    let e = line.indexOf('?', pos);
    if (e < 0 || e > limit) {
      e = limit;
      if (this.dashArgs[f] && e > pos && line.charCodeAt(e - 1) === 45) e--;
    }
    return e;
  }

  /** Record fields this format fills (the rest stay null). */
  fields(): Set<string> {
    const out = new Set<string>();
    for (const kind of this.kinds) for (const f of KIND_INFO[kind].sets) out.add(f);
    if (this.hasTimeParts) {
      const has = (kind: FieldKind) => this.kinds.includes(kind);
      const epoch = has(K.T_EPOCH_S) || has(K.T_EPOCH_MS) || has(K.T_EPOCH_US);
      if (!has(K.T_OFFSET) && !has(K.T_ZONE) && (epoch || this.zone.utc)) out.delete('timestamp_offset_minutes');
    }
    return out;
  }

  parse(line: string, end: number, lenient: boolean): AccessRecord | null {
    return this.compiled(line, end, lenient);
  }

  /** `parse` as a loop over the fields: what the compiled parser must match. */
  parseInterpreted(line: string, end: number, lenient: boolean): AccessRecord | null {
    if (lenient) {
      while (end > 0) {
        const c = line.charCodeAt(end - 1);
        if (c !== 32 && c !== 9) break;
        end--;
      }
    }
    const lead = this.lead;
    if (lead !== '' && !line.startsWith(lead, 0)) return this.fail(F_LITERAL, -1, 0, line);
    const escaped = line.indexOf('\\') !== -1;
    const rec = emptyAccessRecord();
    if (this.hasTimeParts) this.resetTime();
    const count = this.kinds.length;
    let pos = lead.length;
    let quoted = 0;
    for (let f = 0; f < count; f++) {
      const after = this.afters[f] as string;
      let e: number;
      switch (this.ends[f]) {
        case E_FIXED:
          e = pos + (this.widths[f] as number);
          if (e > end) return this.fail(F_NO_END, f, pos, line);
          break;
        case E_LITERAL:
          e = this.finals[f] ? end - after.length : line.indexOf(after, pos);
          if (e < pos || e > end) return this.fail(F_NO_END, f, pos, line);
          break;
        case E_QUOTE:
          e = lenient ? this.lenientQuote(line, pos, end, f, escaped) : closingQuote(line, pos, end, escaped);
          if (e < 0) return this.fail(F_NO_END, f, pos, line);
          break;
        case E_EOL:
          e = end;
          break;
        case E_DIGITS:
          e = scanClass(line, pos, end, 0);
          break;
        case E_DECIMAL:
          e = scanClass(line, pos, end, 1);
          break;
        case E_ALPHA:
          e = scanClass(line, pos, end, 2);
          break;
        case E_LIST:
          e = scanList(line, pos, end, this.stops[f] as number);
          break;
        case E_QMARK:
          e = pos < end && line.charCodeAt(pos) === 63 ? pos + 1 : pos;
          break;
        case E_ADDRESS:
          e = line.indexOf(' ', pos);
          this.addressSlow = this.multiAddress(line, pos, e, end);
          if (this.addressSlow) {
            e = this.addressEnd(line, pos, end, f);
            if (e < pos || e > end) return this.fail(F_NO_END, f, pos, line);
          }
          break;
        case E_QFIELD:
          quoted = this.qfieldEnd(line, pos, end, escaped);
          if (quoted < 0) return this.fail(F_NO_END, f, pos, line);
          if (quoted > 0) {
            pos++;
            e = quoted;
            quoted = 1;
          } else e = pos + 1;
          break;
        default:
          e = this.pathEnd(line, pos, end, f);
      }
      if (!this.convert(rec, f, line, pos, e, escaped)) return this.fail(F_VALUE, f, pos, line, e);
      pos = this.ends[f] === E_QFIELD ? e + quoted : e;
      if (after !== '') {
        if (!line.startsWith(after, pos)) return this.fail(F_LITERAL, f, pos, line);
        pos += after.length;
      }
    }
    if (this.tolerant) {
      if (!this.trailing(rec, line, pos, end, escaped)) return this.fail(F_TRAILING, count - 1, pos, line);
    } else if (pos !== end) return this.fail(F_TRAILING, count - 1, pos, line);
    if (this.resolvesForwarded) resolveForwarded(rec, this.trusted);
    if (this.hasTimeParts && !this.finishTime(rec)) return this.fail(F_VALUE, -1, 0, line);
    return rec;
  }

  /** Whether the client-address field holds more than one address (or an ident other than `-` follows). */
  private multiAddress(line: string, pos: number, e: number, end: number): boolean {
    return (
      e < pos ||
      e >= end ||
      line.charCodeAt(e + 1) !== 45 ||
      line.charCodeAt(e - 1) === 44 ||
      line.charCodeAt(pos) === 34
    );
  }

  /**
   * End of the client-address segment: the space before the ident and user (`%l %u`) or before
   * ` - $remote_user`, found back from the ` [` of the time. Falls back to the first space.
   */
  private addressEnd(line: string, pos: number, end: number, f: number): number {
    const first = line.indexOf(' ', pos);
    const anchor = line.indexOf(' [', pos);
    if (anchor < 0 || anchor >= end) return first;
    const user = line.lastIndexOf(' ', anchor - 1);
    if (user <= pos) return first;
    if (this.addressShape[f] === 2) {
      const ident = line.lastIndexOf(' ', user - 1);
      return ident > pos ? ident : first;
    }
    return user - 2 > pos && line.startsWith(' - ', user - 2) ? user - 2 : first;
  }

  /** The client-address segment `line[s, e)`: one address as before, or a list, a host and a list… */
  private address(rec: AccessRecord, line: string, s: number, e: number, f: number, escaped: boolean): boolean {
    let single = true;
    for (let i = s; i < e; i++) {
      const c = line.charCodeAt(i);
      if (c === 32 || c === 44 || c === 34) {
        single = false;
        break;
      }
    }
    if (!single) return applyAddressSegment(rec, line, s, e, this.hostFirst[f] as boolean, this.trusted);
    if (line.charCodeAt(s) === 91) return bracketedAddress(rec, line, s, e);
    rec.client_ip = this.text(line, s, e, escaped);
    return true;
  }

  /** E_QFIELD: the closing quote's index for a quoted value, 0 for a bare `-`, -1 for anything else. */
  private qfieldEnd(line: string, pos: number, end: number, escaped: boolean): number {
    const c = line.charCodeAt(pos);
    if (c === 34) return closingQuote(line, pos + 1, end, escaped);
    if (c === 45 && (pos + 1 === end || line.charCodeAt(pos + 1) === 32)) return 0;
    return -1;
  }

  /** Tolerant variant: fields after the format's end are kept; false when the rest is not fields. */
  private trailing(rec: AccessRecord, line: string, pos: number, end: number, escaped: boolean): boolean {
    const n = pos === end ? 0 : applyTrailing(rec, line, pos, end, escaped);
    this.trailingFields = n;
    return n >= 0;
  }

  failure(): string {
    const line = this.failLine;
    const col = this.failPos + 1;
    const f = this.failField;
    const field = f >= 0 ? this.directives[f] : undefined;
    switch (this.failCode) {
      case F_LITERAL: {
        const expected = f < 0 ? this.lead : (this.afters[f] as string);
        const where = field === undefined ? 'at the start of the line' : `at column ${col} after ${field}`;
        return `${this.name}: expected ${quoteText(expected)} ${where}, found ${found(line, this.failPos)}`;
      }
      case F_NO_END: {
        const after = this.afters[f] as string;
        const what = after === '' ? 'the end of the value' : quoteText(after);
        return `${this.name}: expected ${what} after column ${col} for ${field}, found none`;
      }
      case F_VALUE:
        if (field === undefined) return `${this.name}: the time fields do not make a valid date`;
        return `${this.name}: invalid value ${found(line, this.failPos, this.failEnd)} at column ${col} for ${field}`;
      default:
        return `${this.name}: unexpected text at column ${col} after the last field: ${found(line, this.failPos)}`;
    }
  }

  private fail(code: number, field: number, pos: number, line: string, end = -1): null {
    this.failCode = code;
    this.failField = field;
    this.failPos = pos;
    this.failEnd = end;
    this.failLine = line;
    return null;
  }

  /** Quoted value whose server did not escape quotes: the first `"` followed by the format's next literal. */
  private lenientQuote(line: string, pos: number, end: number, f: number, escaped: boolean): number {
    const after = this.afters[f] as string;
    if (this.finals[f]) {
      const e = end - after.length;
      return e >= pos && line.startsWith(after, e) ? e : -1;
    }
    let e = line.indexOf(after, pos);
    while (e >= 0 && e < end && escaped && isEscaped(line, e, pos)) e = line.indexOf(after, e + 1);
    return e >= 0 && e < end ? e : -1;
  }

  /** A text value: `-` (and an empty value under `escape=json`) is null; escapes are decoded. */
  private text(line: string, s: number, e: number, escaped: boolean): string | null {
    if (e - s === 1 && line.charCodeAt(s) === 45) return null;
    if (e === s && this.jsonEscape) return null;
    return this.rawText(line, s, e, escaped);
  }

  private rawText(line: string, s: number, e: number, escaped: boolean): string {
    if (escaped) {
      const b = line.indexOf('\\', s);
      if (b >= 0 && b < e) return unescapeRange(line, s, e);
    }
    return line.slice(s, e);
  }

  private isNull(line: string, s: number, e: number): boolean {
    return (e - s === 1 && line.charCodeAt(s) === 45) || (e === s && this.jsonEscape);
  }

  /** A non-negative integer, null for `-`, -1 when invalid (the record is then dropped). */
  private count(line: string, s: number, e: number): number | null {
    return this.isNull(line, s, e) ? null : intValue(line, s, e);
  }

  /** Decodes one field into `rec`; false when the text is not a valid value for it. */
  private convert(rec: AccessRecord, f: number, line: string, s: number, e: number, escaped: boolean): boolean {
    switch (this.kinds[f]) {
      case K.CLIENT_IP:
        if (this.ends[f] === E_ADDRESS && this.addressSlow) return this.address(rec, line, s, e, f, escaped);
        if (line.charCodeAt(s) === 91 /* [ */) return bracketedAddress(rec, line, s, e);
        rec.client_ip = this.text(line, s, e, escaped);
        return true;
      case K.IDENT:
        rec.ident = this.text(line, s, e, escaped);
        return true;
      case K.USER:
        rec.user = this.text(line, s, e, escaped);
        return true;
      case K.TIME_CLF:
        return clfInto(rec, line, s, this.clock);
      case K.TIME_ISO:
        return isoInto(rec, line, s, e, this.clock, this.zone);
      case K.TIME_MSEC:
        return epochInto(rec, line, s, e, this.clock);
      case K.REQUEST:
        applyRequest(rec, this.text(line, s, e, escaped));
        return true;
      case K.METHOD:
        rec.method = this.text(line, s, e, escaped);
        return true;
      case K.PATH:
        rec.path = this.text(line, s, e, escaped);
        return true;
      case K.QUERY_Q:
        if (e === s) rec.query = null;
        else if (line.charCodeAt(s) === 63) rec.query = this.rawText(line, s + 1, e, escaped);
        else return false;
        return true;
      case K.ARGS:
        // After `$is_args` wrote `?`, an empty $args is an empty query, even where escape=json writes "" for null.
        if (e === s && this.kinds[f - 1] === K.IS_ARGS && line.charCodeAt(s - 1) === 63) rec.query = '';
        else rec.query = this.text(line, s, e, escaped);
        return true;
      case K.IS_ARGS:
        return true;
      case K.REQUEST_URI:
        applyUri(rec, this.text(line, s, e, escaped));
        return true;
      case K.PROTOCOL:
        rec.protocol = this.text(line, s, e, escaped);
        return true;
      case K.STATUS:
        rec.status = this.count(line, s, e);
        return rec.status !== -1;
      case K.BYTES:
        rec.bytes = this.count(line, s, e);
        return rec.bytes !== -1;
      case K.BYTES_SENT:
        rec.bytes_sent = this.count(line, s, e);
        return rec.bytes_sent !== -1;
      case K.BYTES_RECEIVED:
        rec.bytes_received = this.count(line, s, e);
        return rec.bytes_received !== -1;
      case K.REFERRER:
        rec.referrer = this.text(line, s, e, escaped);
        return true;
      case K.USER_AGENT:
        rec.user_agent = this.text(line, s, e, escaped);
        return true;
      case K.DURATION_US: {
        const v = this.count(line, s, e);
        rec.request_time_ms = v === null ? null : v / 1000;
        return v !== -1;
      }
      case K.DURATION_MS:
        rec.request_time_ms = this.count(line, s, e);
        return rec.request_time_ms !== -1;
      case K.DURATION_S: {
        const v = this.count(line, s, e);
        rec.request_time_ms = v === null ? null : v * 1000;
        return v !== -1;
      }
      case K.DURATION_S_FRAC: {
        if (this.isNull(line, s, e)) return true;
        const ms = secondsToMs(line, s, e);
        rec.request_time_ms = ms;
        return ms >= 0;
      }
      case K.UPSTREAM_ADDR:
        rec.upstream_addr = this.text(line, s, e, escaped);
        return true;
      case K.UPSTREAM_STATUS:
        rec.upstream_status = this.text(line, s, e, escaped);
        return true;
      case K.UPSTREAM_RESPONSE_TIME: {
        const value = this.text(line, s, e, escaped);
        rec.upstream_response_time = value;
        if (value === null) return true;
        const total = upstreamTotalMs(value);
        if (Number.isNaN(total)) return false;
        rec.upstream_response_time_ms = total < 0 ? null : total;
        return true;
      }
      case K.VHOST:
        rec.vhost = this.text(line, s, e, escaped);
        return true;
      case K.PORT: {
        const v = this.count(line, s, e);
        if (v !== null && (v < 0 || v > 65535)) return false;
        rec.port = v;
        return true;
      }
      case K.EXTRA_TEXT:
        (rec.extra as Record<string, unknown>)[this.keys[f] as string] = this.text(line, s, e, escaped);
        return true;
      case K.EXTRA_INT: {
        const v = this.count(line, s, e);
        (rec.extra as Record<string, unknown>)[this.keys[f] as string] = v;
        return v !== -1;
      }
      default:
        return this.timePart(this.kinds[f] as FieldKind, line, s, e);
    }
  }

  private resetTime(): void {
    this.tYear = 0;
    this.tMonth = 0;
    this.tDay = 0;
    this.tHour = 0;
    this.tMinute = 0;
    this.tSecond = 0;
    this.tMillis = 0;
    this.tOffset = Number.NaN;
    this.tEpochMs = Number.NaN;
  }

  private timePart(kind: FieldKind, line: string, s: number, e: number): boolean {
    switch (kind) {
      case K.T_YEAR:
        this.tYear = intValue(line, s, e);
        return this.tYear >= 0;
      case K.T_YEAR2: {
        const y = twoDigits(line, s);
        this.tYear = y < 69 ? 2000 + y : 1900 + y; // POSIX strptime pivot
        return y >= 0;
      }
      case K.T_MONTH:
        this.tMonth = twoDigits(line, s);
        return this.tMonth >= 0;
      case K.T_MONTH_ABBR:
        this.tMonth = monthFromAbbr(line, s);
        return this.tMonth > 0;
      case K.T_MONTH_NAME:
        this.tMonth = MONTH_NAMES.indexOf(line.slice(s, e)) + 1;
        return this.tMonth > 0;
      case K.T_DAY:
        this.tDay = twoDigits(line, s);
        return this.tDay >= 0;
      case K.T_DAY_SPACE:
        this.tDay = line.charCodeAt(s) === 32 ? digit(line, s + 1) : twoDigits(line, s);
        return this.tDay >= 0;
      case K.T_HOUR:
        this.tHour = twoDigits(line, s);
        return this.tHour >= 0;
      case K.T_MINUTE:
        this.tMinute = twoDigits(line, s);
        return this.tMinute >= 0;
      case K.T_SECOND:
        this.tSecond = twoDigits(line, s);
        return this.tSecond >= 0;
      case K.T_OFFSET:
        this.tOffset = offsetAt(line, s, false);
        return !Number.isNaN(this.tOffset);
      case K.T_WEEKDAY_ABBR:
      case K.T_WEEKDAY_NAME:
        return e > s && scanClass(line, s, e, 2) === e;
      case K.T_EPOCH_S: {
        const v = intValue(line, s, e);
        this.tEpochMs = v * 1000;
        return v >= 0;
      }
      case K.T_EPOCH_MS:
        this.tEpochMs = intValue(line, s, e);
        return this.tEpochMs >= 0;
      case K.T_EPOCH_US: {
        const us = intValue(line, s, e);
        this.tEpochMs = Math.floor(us / 1000);
        return us >= 0;
      }
      case K.T_MSEC_FRAC:
        this.tMillis = intValue(line, s, e);
        return this.tMillis >= 0;
      case K.T_USEC_FRAC: {
        const us = intValue(line, s, e);
        this.tMillis = Math.floor(us / 1000);
        return us >= 0;
      }
      case K.T_ZONE: {
        const zone = line.slice(s, e);
        if (zone === 'UTC' || zone === 'GMT' || zone === 'Z') this.tOffset = 0;
        return e > s;
      }
      default:
        throw new Error(`parse: field kind ${kind} has no decoder`);
    }
  }

  private finishTime(rec: AccessRecord): boolean {
    const offset = this.tOffset;
    if (!Number.isNaN(this.tEpochMs)) {
      const ms = this.tEpochMs;
      const seconds = Math.floor(ms / 1000);
      rec.timestamp = this.clock.iso(seconds, ms - seconds * 1000);
      rec.timestamp_offset_minutes = Number.isNaN(offset) ? null : offset;
      return true;
    }
    if (!validDateTime(this.tYear, this.tMonth, this.tDay, this.tHour, this.tMinute, this.tSecond)) return false;
    const local = localSeconds(this.tYear, this.tMonth, this.tDay, this.tHour, this.tMinute, this.tSecond);
    const used = Number.isNaN(offset) ? this.zone.offsetForLocal(local) : offset;
    rec.timestamp = this.clock.iso(local - used * 60, this.tMillis);
    rec.timestamp_offset_minutes = Number.isNaN(offset) && this.zone.utc ? null : used;
    return true;
  }
}

function digit(line: string, at: number): number {
  const d = line.charCodeAt(at) - 48;
  return d >= 0 && d <= 9 ? d : -1;
}

function mergeLiterals(tokens: readonly Token[]): Token[] {
  const out: Token[] = [];
  for (const tok of tokens) {
    const last = out[out.length - 1];
    if (tok.type === 'literal' && last?.type === 'literal') {
      out[out.length - 1] = { type: 'literal', text: last.text + tok.text, column: last.column };
    } else if (tok.type !== 'literal' || tok.text !== '') out.push(tok);
  }
  return out;
}

/**
 * Whether the client address at `i` is followed by `%l %u %t` (2: two tokens before ` [`) or by
 * ` - $remote_user [$time_local]` (1), the shapes whose address position proxies and hosts fill with more.
 */
function addressShape(tokens: readonly Token[], i: number): number {
  const at = (k: number) => tokens[i + k];
  const isLiteral = (k: number, text: string) => {
    const t = at(k);
    return t?.type === 'literal' && t.text === text;
  };
  const isField = (k: number, kind: FieldKind) => {
    const t = at(k);
    return t?.type === 'field' && t.kind === kind;
  };
  const opensTime = (k: number) => {
    const t = at(k);
    return t?.type === 'literal' && t.text.startsWith(' [') && isField(k + 1, K.TIME_CLF);
  };
  if (isLiteral(1, ' ') && isField(2, K.IDENT) && isLiteral(3, ' ') && isField(4, K.USER) && opensTime(5)) return 2;
  if (isLiteral(1, ' - ') && isField(2, K.USER) && opensTime(3)) return 1;
  return 0;
}

/**
 * For the tolerant variant: the quotes around quoted text values (all but the request line) move out of
 * the literals, so that the scanner can take either `"value"` or a bare `-` there.
 */
function unquotedTokens(tokens: readonly Token[]): { tokens: Token[]; fields: Set<Token> } {
  const texts = tokens.map((t) => (t.type === 'literal' ? t.text : ''));
  const fields = new Set<Token>();
  tokens.forEach((tok, i) => {
    if (tok.type !== 'field' || tok.kind === K.REQUEST || KIND_INFO[tok.kind].scan !== SCAN.TEXT) return;
    const before = tokens[i - 1];
    const after = tokens[i + 1];
    if (before?.type !== 'literal' || after?.type !== 'literal') return;
    if (!(texts[i - 1] as string).endsWith('"') || !(texts[i + 1] as string).startsWith('"')) return;
    texts[i - 1] = (texts[i - 1] as string).slice(0, -1);
    texts[i + 1] = (texts[i + 1] as string).slice(1);
    fields.add(tok);
  });
  const out: Token[] = [];
  tokens.forEach((tok, i) => {
    if (tok.type === 'field') out.push(tok);
    else if (texts[i] !== '') out.push({ ...tok, text: texts[i] as string });
  });
  return { tokens: out, fields };
}

function literalAfterGroup(tokens: readonly Token[], from: number): string {
  for (let i = from + 1; i < tokens.length; i++) {
    const tok = tokens[i] as Token;
    if (tok.type === 'literal') return tok.text;
  }
  return '';
}

/** Strftime components must give a full date and time (or an epoch), else every line would be refused. */
function checkTimeParts(tokens: readonly Token[], dialect: Dialect): void {
  const kinds = new Set<FieldKind>();
  let column = 0;
  for (const tok of tokens) {
    if (tok.type === 'field' && KIND_INFO[tok.kind].timePart) {
      kinds.add(tok.kind);
      column ||= tok.column;
    }
  }
  if (kinds.has(K.T_EPOCH_S) || kinds.has(K.T_EPOCH_MS) || kinds.has(K.T_EPOCH_US)) return;
  const missing: string[] = [];
  if (!kinds.has(K.T_YEAR) && !kinds.has(K.T_YEAR2)) missing.push('%Y');
  if (!kinds.has(K.T_MONTH) && !kinds.has(K.T_MONTH_ABBR) && !kinds.has(K.T_MONTH_NAME)) missing.push('%m');
  if (!kinds.has(K.T_DAY) && !kinds.has(K.T_DAY_SPACE)) missing.push('%d');
  if (!kinds.has(K.T_HOUR)) missing.push('%H');
  if (!kinds.has(K.T_MINUTE)) missing.push('%M');
  if (!kinds.has(K.T_SECOND)) missing.push('%S');
  if (missing.length > 0) {
    throw formatError(
      `the time at column ${column} of the ${dialect} format lacks ${missing.join(', ')}: it does not name an instant`,
    );
  }
}

/** End of a run of digits (0), digits with `.` (1) or letters (2); `-` alone counts as a value. */
function scanClass(line: string, pos: number, end: number, cls: number): number {
  if (cls !== 2 && pos < end && line.charCodeAt(pos) === 45) return pos + 1;
  let i = pos;
  while (i < end) {
    const c = line.charCodeAt(i);
    const lower = c | 0x20;
    const ok = cls === 2 ? lower >= 97 && lower <= 122 : (c >= 48 && c <= 57) || (cls === 1 && c === 46);
    if (!ok) break;
    i++;
  }
  return i;
}

/**
 * nginx upstream lists: `a, b : c` (`,` between tries, ` : ` between upstream groups). Items end at a
 * space or at `stop`, the first character of the literal after the field.
 */
function scanList(line: string, pos: number, end: number, stop: number): number {
  let i = pos;
  for (;;) {
    while (i < end && line.charCodeAt(i) !== 32 && line.charCodeAt(i) !== stop) i++;
    if (i >= end || i === pos || line.charCodeAt(i) !== 32) return i;
    if (line.charCodeAt(i - 1) === 44 /* , */ && i + 1 < end) {
      i++;
      continue;
    }
    if (i + 3 < end && line.charCodeAt(i + 1) === 58 /* : */ && line.charCodeAt(i + 2) === 32) {
      i += 3;
      continue;
    }
    return i;
  }
}

/** `[2001:db8::1]` or `[2001:db8::1]:5678`: the address, and the port under extra.remote_port. */
function bracketedAddress(rec: AccessRecord, line: string, s: number, e: number): boolean {
  const close = line.indexOf(']', s);
  if (close < 0 || close >= e) return false;
  rec.client_ip = line.slice(s + 1, close);
  if (close + 1 === e) return true;
  if (line.charCodeAt(close + 1) !== 58) return false;
  const port = intValue(line, close + 2, e);
  (rec.extra as Record<string, unknown>).remote_port = port;
  return port >= 0;
}

function quoteText(text: string): string {
  return '`' + text.replace(/`/g, '\\`') + '`';
}

/** The text at `pos` (up to `end` or 20 characters) for a message. */
function found(line: string, pos: number, end = -1): string {
  const stop = end >= pos ? Math.min(end, pos + 40) : Math.min(line.length, pos + 20);
  return pos >= line.length ? 'the end of the line' : quoteText(line.slice(pos, stop));
}
