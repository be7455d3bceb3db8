/**
 * nginx `log_format` strings → tokens. Accepts the format text itself or the whole directive pasted from
 * nginx.conf (`log_format main escape=json '…' '…';`), whose quoted pieces nginx concatenates.
 */
import type { EscapeMode, FieldKind, Token } from './fields.ts';
import { K } from './fields.ts';
import { formatError } from './template.ts';

/** Variables with a fixed meaning in the record. */
const NAMED: Record<string, FieldKind> = {
  remote_addr: K.CLIENT_IP,
  remote_user: K.USER,
  time_local: K.TIME_CLF,
  time_iso8601: K.TIME_ISO,
  msec: K.TIME_MSEC,
  request: K.REQUEST,
  request_method: K.METHOD,
  request_uri: K.REQUEST_URI,
  uri: K.PATH,
  document_uri: K.PATH,
  args: K.ARGS,
  query_string: K.ARGS,
  is_args: K.IS_ARGS,
  server_protocol: K.PROTOCOL,
  status: K.STATUS,
  body_bytes_sent: K.BYTES,
  bytes_sent: K.BYTES_SENT,
  request_length: K.BYTES_RECEIVED,
  request_time: K.DURATION_S_FRAC,
  upstream_addr: K.UPSTREAM_ADDR,
  upstream_status: K.UPSTREAM_STATUS,
  upstream_response_time: K.UPSTREAM_RESPONSE_TIME,
  http_referer: K.REFERRER,
  http_user_agent: K.USER_AGENT,
  host: K.VHOST,
  server_name: K.VHOST,
  server_port: K.PORT,
};

/** Counters that go to `extra` as numbers. */
const INTEGERS = new Set(['connection', 'connection_requests', 'remote_port', 'realip_remote_port', 'pid']);

/** Other built-in variables people log; their values go to `extra` as text. */
const TEXT = new Set([
  'connection_time',
  'content_length',
  'content_type',
  'date_gmt',
  'date_local',
  'document_root',
  'fastcgi_path_info',
  'fastcgi_script_name',
  'gzip_ratio',
  'hostname',
  'http2',
  'http3',
  'https',
  'invalid_referer',
  'limit_conn_status',
  'limit_rate',
  'limit_req_status',
  'nginx_version',
  'pipe',
  'proxy_add_x_forwarded_for',
  'proxy_host',
  'proxy_port',
  'proxy_protocol_addr',
  'proxy_protocol_port',
  'proxy_protocol_server_addr',
  'proxy_protocol_server_port',
  'realip_remote_addr',
  'realpath_root',
  'request_body',
  'request_body_file',
  'request_completion',
  'request_filename',
  'request_id',
  'scheme',
  'secure_link',
  'secure_link_expires',
  'server_addr',
  'tcpinfo_rtt',
  'tcpinfo_rttvar',
  'tcpinfo_snd_cwnd',
  'tcpinfo_rcv_space',
  'uid_got',
  'uid_reset',
  'uid_set',
]);

/** Variable families: headers, cookies, arguments, upstream, TLS, GeoIP. */
const PREFIXES = ['http_', 'sent_http_', 'sent_trailer_', 'cookie_', 'arg_', 'upstream_', 'ssl_', 'geoip_', 'jwt_'];

export interface NginxFormat {
  readonly tokens: Token[];
  /** `escape=` found in a pasted `log_format` directive. */
  readonly escape: EscapeMode | undefined;
}

/** A pasted `log_format name [escape=…] 'piece' "piece" …;` → its text and escape mode. */
export function unwrapLogFormat(text: string): { text: string; escape: EscapeMode | undefined } {
  const head = /^\s*log_format\s+[\w-]+\s+(?:escape=(default|json|none)\s+)?/.exec(text);
  if (!head) return { text, escape: undefined };
  let i = head[0].length;
  let out = '';
  while (i < text.length) {
    const c = text[i] as string;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === ';') break;
    if (c !== "'" && c !== '"')
      throw formatError(`expected a quoted string at column ${i + 1} of the log_format directive`);
    i++;
    while (i < text.length && text[i] !== c) {
      if (text[i] === '\\' && i + 1 < text.length) {
        const n = text[i + 1] as string;
        out +=
          n === 't' ? '\t' : n === 'n' ? '\n' : n === 'r' ? '\r' : n === '"' || n === "'" || n === '\\' ? n : '\\' + n;
        i += 2;
      } else out += text[i++];
    }
    if (i >= text.length) throw formatError('unterminated quoted string in the log_format directive');
    i++;
  }
  return { text: out, escape: head[1] as EscapeMode | undefined };
}

export function nginxTokens(input: string, customVariables: readonly string[] = []): NginxFormat {
  const unwrapped = unwrapLogFormat(input);
  const format = unwrapped.text;
  const custom = new Set(customVariables);
  const tokens: Token[] = [];
  let literal = '';
  let literalColumn = 1;
  let i = 0;
  while (i < format.length) {
    const c = format[i] as string;
    if (c !== '$') {
      if (literal === '') literalColumn = i + 1;
      literal += c;
      i++;
      continue;
    }
    const start = i;
    let name: string;
    if (format[i + 1] === '{') {
      const close = format.indexOf('}', i);
      if (close < 0) throw formatError(`unclosed \`\${\` at column ${i + 1} of the nginx format`);
      name = format.slice(i + 2, close);
      i = close + 1;
    } else {
      let j = i + 1;
      while (j < format.length && /[A-Za-z0-9_]/.test(format[j] as string)) j++;
      name = format.slice(i + 1, j);
      i = j;
    }
    if (!/^[A-Za-z0-9_]+$/.test(name))
      throw formatError(`invalid variable name at column ${start + 1} of the nginx format`);
    if (literal !== '') tokens.push({ type: 'literal', text: literal, column: literalColumn });
    literal = '';
    const directive = format.slice(start, i);
    const column = start + 1;
    const lower = name.toLowerCase();
    const kind = NAMED[lower];
    if (kind !== undefined) tokens.push({ type: 'field', kind, key: '', directive, column });
    else if (INTEGERS.has(lower)) tokens.push({ type: 'field', kind: K.EXTRA_INT, key: lower, directive, column });
    else if (
      TEXT.has(lower) ||
      custom.has(name) ||
      PREFIXES.some((p) => lower.startsWith(p) && lower.length > p.length)
    ) {
      tokens.push({ type: 'field', kind: K.EXTRA_TEXT, key: custom.has(name) ? name : lower, directive, column });
    } else if (lower === 'binary_remote_addr') {
      throw formatError(
        `$binary_remote_addr at column ${column} writes raw bytes and cannot be parsed; log $remote_addr`,
      );
    } else {
      throw formatError(
        `unknown variable $${name} at column ${column} of the nginx format; ` +
          'list variables set by `map`, `set` or third-party modules in `custom_variables`',
      );
    }
  }
  if (literal !== '') tokens.push({ type: 'literal', text: literal, column: literalColumn });
  return { tokens, escape: unwrapped.escape };
}
