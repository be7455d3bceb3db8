/**
 * Field kinds a compiled log format is made of. Apache directives and nginx variables both compile to
 * these, so one scanner and one formatter serve both servers. Plain numeric constants (not strings) keep
 * the scanner's switch a jump table.
 */
export const K = {
  CLIENT_IP: 1,
  IDENT: 2,
  USER: 3,
  /** `10/Oct/2000:13:55:36 -0700` (Apache %t without brackets, nginx $time_local). */
  TIME_CLF: 4,
  /** `2000-10-10T13:55:36-07:00` (nginx $time_iso8601). */
  TIME_ISO: 5,
  /** `971211336.123`: epoch seconds with milliseconds (nginx $msec). */
  TIME_MSEC: 6,
  REQUEST: 7,
  METHOD: 8,
  /** Path without the query (%U, $uri). */
  PATH: 9,
  /** `?query` or empty (%q). */
  QUERY_Q: 10,
  /** Query without `?` ($args). */
  ARGS: 11,
  /** `?` or empty ($is_args). */
  IS_ARGS: 12,
  /** Path and query ($request_uri). */
  REQUEST_URI: 13,
  PROTOCOL: 14,
  STATUS: 15,
  BYTES: 16,
  BYTES_SENT: 17,
  BYTES_RECEIVED: 18,
  REFERRER: 19,
  USER_AGENT: 20,
  DURATION_US: 21,
  DURATION_MS: 22,
  DURATION_S: 23,
  /** Seconds with a fraction, `0.123` ($request_time). */
  DURATION_S_FRAC: 24,
  UPSTREAM_ADDR: 25,
  UPSTREAM_STATUS: 26,
  UPSTREAM_RESPONSE_TIME: 27,
  VHOST: 28,
  PORT: 29,
  EXTRA_TEXT: 30,
  EXTRA_INT: 31,
  // strftime components of Apache %{format}t; combined into one instant at the end of the line.
  T_YEAR: 40,
  T_YEAR2: 41,
  T_MONTH: 42,
  T_MONTH_ABBR: 43,
  T_MONTH_NAME: 44,
  T_DAY: 45,
  T_DAY_SPACE: 46,
  T_HOUR: 47,
  T_MINUTE: 48,
  T_SECOND: 49,
  /** `-0700` */
  T_OFFSET: 50,
  T_WEEKDAY_ABBR: 51,
  T_WEEKDAY_NAME: 52,
  T_EPOCH_S: 53,
  T_EPOCH_MS: 54,
  T_EPOCH_US: 55,
  T_MSEC_FRAC: 56,
  T_USEC_FRAC: 57,
  /** Zone name after %Z; only UTC/GMT/Z carry an offset (0). */
  T_ZONE: 58,
} as const;

export type FieldKind = (typeof K)[keyof typeof K];

/** How the end of a field is found when no literal text follows it. */
export const SCAN = {
  /** Needs a literal (or the end of the line) after it. */
  TEXT: 0,
  FIXED: 1,
  DIGITS: 2,
  /** Digits and one `.` */
  DECIMAL: 3,
  ALPHA: 4,
  /** nginx upstream lists: items joined by `, ` and ` : ` */
  LIST: 5,
  /** `?` or nothing */
  OPTIONAL_QMARK: 6,
} as const;
export type ScanMode = (typeof SCAN)[keyof typeof SCAN];

export interface KindInfo {
  readonly scan: ScanMode;
  /** Characters, for SCAN.FIXED. */
  readonly width: number;
  /** Record fields a field of this kind sets (for docs, tests and the formatter). */
  readonly sets: readonly string[];
  /** Part of a time made of strftime components. */
  readonly timePart: boolean;
}

const TIME_FIELDS = ['timestamp', 'timestamp_offset_minutes'] as const;

function info(scan: ScanMode, sets: readonly string[], width = 0, timePart = false): KindInfo {
  return { scan, width, sets, timePart };
}

const part = (scan: ScanMode, width = 0): KindInfo => info(scan, TIME_FIELDS, width, true);

export const KIND_INFO: Readonly<Record<FieldKind, KindInfo>> = {
  [K.CLIENT_IP]: info(SCAN.TEXT, ['client_ip']),
  [K.IDENT]: info(SCAN.TEXT, ['ident']),
  [K.USER]: info(SCAN.TEXT, ['user']),
  [K.TIME_CLF]: info(SCAN.FIXED, TIME_FIELDS, 26),
  [K.TIME_ISO]: info(SCAN.FIXED, TIME_FIELDS, 25),
  [K.TIME_MSEC]: info(SCAN.DECIMAL, ['timestamp']),
  [K.REQUEST]: info(SCAN.TEXT, ['request', 'method', 'path', 'query', 'protocol']),
  [K.METHOD]: info(SCAN.TEXT, ['method']),
  [K.PATH]: info(SCAN.TEXT, ['path']),
  [K.QUERY_Q]: info(SCAN.TEXT, ['query']),
  [K.ARGS]: info(SCAN.TEXT, ['query']),
  [K.IS_ARGS]: info(SCAN.OPTIONAL_QMARK, []),
  [K.REQUEST_URI]: info(SCAN.TEXT, ['path', 'query']),
  [K.PROTOCOL]: info(SCAN.TEXT, ['protocol']),
  [K.STATUS]: info(SCAN.DIGITS, ['status']),
  [K.BYTES]: info(SCAN.DIGITS, ['bytes']),
  [K.BYTES_SENT]: info(SCAN.DIGITS, ['bytes_sent']),
  [K.BYTES_RECEIVED]: info(SCAN.DIGITS, ['bytes_received']),
  [K.REFERRER]: info(SCAN.TEXT, ['referrer']),
  [K.USER_AGENT]: info(SCAN.TEXT, ['user_agent']),
  [K.DURATION_US]: info(SCAN.DIGITS, ['request_time_ms']),
  [K.DURATION_MS]: info(SCAN.DIGITS, ['request_time_ms']),
  [K.DURATION_S]: info(SCAN.DIGITS, ['request_time_ms']),
  [K.DURATION_S_FRAC]: info(SCAN.DECIMAL, ['request_time_ms']),
  [K.UPSTREAM_ADDR]: info(SCAN.LIST, ['upstream_addr']),
  [K.UPSTREAM_STATUS]: info(SCAN.LIST, ['upstream_status']),
  [K.UPSTREAM_RESPONSE_TIME]: info(SCAN.LIST, ['upstream_response_time', 'upstream_response_time_ms']),
  [K.VHOST]: info(SCAN.TEXT, ['vhost']),
  [K.PORT]: info(SCAN.DIGITS, ['port']),
  [K.EXTRA_TEXT]: info(SCAN.TEXT, ['extra']),
  [K.EXTRA_INT]: info(SCAN.DIGITS, ['extra']),
  [K.T_YEAR]: part(SCAN.FIXED, 4),
  [K.T_YEAR2]: part(SCAN.FIXED, 2),
  [K.T_MONTH]: part(SCAN.FIXED, 2),
  [K.T_MONTH_ABBR]: part(SCAN.FIXED, 3),
  [K.T_MONTH_NAME]: part(SCAN.ALPHA),
  [K.T_DAY]: part(SCAN.FIXED, 2),
  [K.T_DAY_SPACE]: part(SCAN.FIXED, 2),
  [K.T_HOUR]: part(SCAN.FIXED, 2),
  [K.T_MINUTE]: part(SCAN.FIXED, 2),
  [K.T_SECOND]: part(SCAN.FIXED, 2),
  [K.T_OFFSET]: part(SCAN.FIXED, 5),
  [K.T_WEEKDAY_ABBR]: part(SCAN.FIXED, 3),
  [K.T_WEEKDAY_NAME]: part(SCAN.ALPHA),
  [K.T_EPOCH_S]: part(SCAN.DIGITS),
  [K.T_EPOCH_MS]: part(SCAN.DIGITS),
  [K.T_EPOCH_US]: part(SCAN.DIGITS),
  [K.T_MSEC_FRAC]: part(SCAN.FIXED, 3),
  [K.T_USEC_FRAC]: part(SCAN.FIXED, 6),
  [K.T_ZONE]: part(SCAN.ALPHA),
};

/** One piece of a format string, as written, with its 1-based column for error messages. */
export type Token =
  | { readonly type: 'literal'; readonly text: string; readonly column: number }
  | {
      readonly type: 'field';
      readonly kind: FieldKind;
      /** Key under `extra` for EXTRA_* kinds; empty otherwise. */
      readonly key: string;
      /** The directive as written (`%{Referer}i`, `$status`), for messages. */
      readonly directive: string;
      readonly column: number;
    };

export type Dialect = 'apache' | 'nginx';
/** How values are escaped in the log: Apache's and nginx's default escaping, nginx `escape=json`, or none. */
export type EscapeMode = 'default' | 'json' | 'none';

/** `X-Forwarded-For` → `x_forwarded_for`: the key nginx would give the header's variable. */
export function headerKey(name: string): string {
  return name.toLowerCase().replace(/-/g, '_');
}
