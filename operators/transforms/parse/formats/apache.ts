/**
 * Apache mod_log_config format strings → tokens. Accepts the string as written inside `LogFormat "…"`
 * (with `\"` escapes) or the whole `LogFormat "…" name` line pasted from httpd.conf.
 */
import { type FieldKind, headerKey, K, type Token } from './fields.ts';
import { formatError } from './template.ts';

type Field = Extract<Token, { type: 'field' }>;

/** Strips a pasted `LogFormat "…" [nickname]` / `CustomLog path "…"` down to the format string. */
export function unwrapApacheDirective(text: string): string {
  const m = /^\s*(?:LogFormat|CustomLog\s+\S+)\s+"((?:[^"\\]|\\.)*)"(?:\s+[\w-]+)?\s*$/is.exec(text);
  return m ? (m[1] as string) : text;
}

export function apacheTokens(input: string): Token[] {
  const format = unwrapApacheDirective(input);
  const tokens: Token[] = [];
  let literal = '';
  let literalColumn = 1;
  const pushLiteral = () => {
    if (literal !== '') tokens.push({ type: 'literal', text: literal, column: literalColumn });
    literal = '';
  };
  let i = 0;
  while (i < format.length) {
    const c = format[i] as string;
    if (c === '\\') {
      if (literal === '') literalColumn = i + 1;
      const n = format[i + 1];
      const decoded = n === 'n' ? '\n' : n === 't' ? '\t' : n === 'r' ? '\r' : n === '"' || n === '\\' ? n : undefined;
      literal += decoded ?? '\\';
      i += decoded === undefined ? 1 : 2;
      continue;
    }
    if (c !== '%') {
      if (literal === '') literalColumn = i + 1;
      literal += c;
      i++;
      continue;
    }
    const start = i;
    i++;
    let param: string | undefined;
    while (i < format.length && /[!<>,0-9{]/.test(format[i] as string)) {
      if (format[i] === '{') {
        const close = format.indexOf('}', i);
        if (close < 0) throw formatError(`unclosed \`{\` at column ${i + 1} of the apache format`);
        param = format.slice(i + 1, close);
        i = close + 1;
      } else i++;
    }
    const letter = format[i];
    if (letter === undefined) throw formatError(`the apache format ends inside the directive at column ${start + 1}`);
    i++;
    if (letter === '%' && i === start + 2) {
      if (literal === '') literalColumn = start + 1;
      literal += '%';
      continue;
    }
    pushLiteral();
    const directive = format.slice(start, i);
    for (const tok of directiveTokens(letter, param, directive, start + 1)) tokens.push(tok);
  }
  pushLiteral();
  return tokens;
}

function field(kind: FieldKind, directive: string, column: number, key = ''): Field {
  return { type: 'field', kind, key, directive, column };
}

function directiveTokens(letter: string, param: string | undefined, directive: string, column: number): Token[] {
  const one = (kind: FieldKind, key = ''): Token[] => [field(kind, directive, column, key)];
  const needParam = (): string => {
    if (param === undefined || param === '') {
      throw formatError(
        `${directive} at column ${column} of the apache format needs a name in braces: %{Name}${letter}`,
      );
    }
    return param;
  };
  switch (letter) {
    case 'a':
      return param === 'c' ? one(K.EXTRA_TEXT, 'realip_remote_addr') : one(K.CLIENT_IP);
    case 'A':
      return one(K.EXTRA_TEXT, 'server_addr');
    case 'b':
    case 'B':
      return one(K.BYTES);
    case 'C':
      return one(K.EXTRA_TEXT, `cookie_${needParam()}`);
    case 'D':
      return one(K.DURATION_US);
    case 'e':
      return one(K.EXTRA_TEXT, `env_${needParam()}`);
    case 'f':
      return one(K.EXTRA_TEXT, 'request_filename');
    case 'h':
      return param === 'c' ? one(K.EXTRA_TEXT, 'realip_remote_host') : one(K.CLIENT_IP);
    case 'H':
      return one(K.PROTOCOL);
    case 'i': {
      const key = headerKey(needParam());
      if (key === 'referer') return one(K.REFERRER);
      if (key === 'user_agent') return one(K.USER_AGENT);
      return one(K.EXTRA_TEXT, `http_${key}`);
    }
    case 'I':
      return one(K.BYTES_RECEIVED);
    case 'k':
      return one(K.EXTRA_INT, 'keepalive_requests');
    case 'l':
      return one(K.IDENT);
    case 'L':
      return one(K.EXTRA_TEXT, 'log_id');
    case 'm':
      return one(K.METHOD);
    case 'n':
      return one(K.EXTRA_TEXT, `note_${needParam()}`);
    case 'o':
      return one(K.EXTRA_TEXT, `sent_http_${headerKey(needParam())}`);
    case 'O':
      return one(K.BYTES_SENT);
    case 'p':
      if (param === undefined || param === 'canonical' || param === 'local') return one(K.PORT);
      if (param === 'remote') return one(K.EXTRA_INT, 'remote_port');
      break;
    case 'P':
      if (param === undefined || param === 'pid') return one(K.EXTRA_INT, 'pid');
      if (param === 'tid') return one(K.EXTRA_INT, 'tid');
      if (param === 'hextid') return one(K.EXTRA_TEXT, 'tid_hex');
      break;
    case 'q':
      return one(K.QUERY_Q);
    case 'r':
      return one(K.REQUEST);
    case 'R':
      return one(K.EXTRA_TEXT, 'handler');
    case 's':
      return one(K.STATUS);
    case 'S':
      return one(K.EXTRA_INT, 'bytes_transferred');
    case 't':
      return timeTokens(param, directive, column);
    case 'T':
      if (param === undefined || param === 's') return one(K.DURATION_S);
      if (param === 'ms') return one(K.DURATION_MS);
      if (param === 'us') return one(K.DURATION_US);
      break;
    case 'u':
      return one(K.USER);
    case 'U':
      return one(K.PATH);
    case 'v':
    case 'V':
      return one(K.VHOST);
    case 'X':
      return one(K.EXTRA_TEXT, 'connection_status');
    default:
      throw formatError(`unknown directive ${directive} at column ${column} of the apache format`);
  }
  throw formatError(`unknown parameter {${param}} of ${directive} at column ${column} of the apache format`);
}

/** `%t` and `%{format}t`, with the `begin:` / `end:` prefixes and the special sec/msec/usec forms. */
function timeTokens(param: string | undefined, directive: string, column: number): Token[] {
  let fmt = param ?? '';
  if (fmt.startsWith('begin:')) fmt = fmt.slice(6);
  else if (fmt.startsWith('end:')) fmt = fmt.slice(4);
  switch (fmt) {
    case '':
      return [
        { type: 'literal', text: '[', column },
        field(K.TIME_CLF, directive, column),
        { type: 'literal', text: ']', column },
      ];
    case 'sec':
      return [field(K.T_EPOCH_S, directive, column)];
    case 'msec':
      return [field(K.T_EPOCH_MS, directive, column)];
    case 'usec':
      return [field(K.T_EPOCH_US, directive, column)];
    case 'msec_frac':
      return [field(K.T_MSEC_FRAC, directive, column)];
    case 'usec_frac':
      return [field(K.T_USEC_FRAC, directive, column)];
  }
  return strftimeTokens(fmt, directive, column);
}

const STRFTIME: Record<string, FieldKind | string> = {
  Y: K.T_YEAR,
  y: K.T_YEAR2,
  m: K.T_MONTH,
  b: K.T_MONTH_ABBR,
  h: K.T_MONTH_ABBR,
  B: K.T_MONTH_NAME,
  d: K.T_DAY,
  e: K.T_DAY_SPACE,
  H: K.T_HOUR,
  M: K.T_MINUTE,
  S: K.T_SECOND,
  z: K.T_OFFSET,
  Z: K.T_ZONE,
  a: K.T_WEEKDAY_ABBR,
  A: K.T_WEEKDAY_NAME,
  s: K.T_EPOCH_S,
  T: '%H:%M:%S',
  D: '%m/%d/%y',
  F: '%Y-%m-%d',
  R: '%H:%M',
};

/** strftime(3) conversions → time component fields. */
export function strftimeTokens(fmt: string, directive: string, column: number): Token[] {
  const tokens: Token[] = [];
  let literal = '';
  const flush = () => {
    if (literal !== '') tokens.push({ type: 'literal', text: literal, column });
    literal = '';
  };
  for (let i = 0; i < fmt.length; i++) {
    const c = fmt[i] as string;
    if (c !== '%') {
      literal += c;
      continue;
    }
    const conv = fmt[++i];
    if (conv === '%') literal += '%';
    else if (conv === 'n') literal += '\n';
    else if (conv === 't') literal += '\t';
    else {
      const mapped = conv === undefined ? undefined : STRFTIME[conv];
      if (mapped === undefined) {
        throw formatError(
          `unsupported strftime conversion %${conv ?? ''} in ${directive} at column ${column} of the apache format`,
        );
      }
      flush();
      if (typeof mapped === 'string') for (const t of strftimeTokens(mapped, directive, column)) tokens.push(t);
      else tokens.push(field(mapped, directive, column));
    }
  }
  flush();
  return tokens;
}
