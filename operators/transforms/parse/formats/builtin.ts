/** Named formats, written exactly as the servers' shipped configurations define them. */
import type { Dialect } from './fields.ts';

const COMMON = '%h %l %u %t "%r" %>s %b';
const COMBINED = `${COMMON} "%{Referer}i" "%{User-Agent}i"`;
const NGINX_COMBINED =
  '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"';
const NGINX_MAIN = `${NGINX_COMBINED} "$http_x_forwarded_for"`;

export interface BuiltinTemplate {
  readonly dialect: Dialect;
  readonly format: string;
  readonly description: string;
}

export const BUILTIN_TEMPLATES = {
  common: { dialect: 'apache', format: COMMON, description: 'Apache Common Log Format' },
  combined: { dialect: 'apache', format: COMBINED, description: 'Apache/NCSA combined (also nginx `combined`)' },
  combinedio: { dialect: 'apache', format: `${COMBINED} %I %O`, description: 'Apache combined with mod_logio bytes' },
  combined_usec: { dialect: 'apache', format: `${COMBINED} %D`, description: 'combined + %D (microseconds)' },
  combined_sec: { dialect: 'apache', format: `${COMBINED} %T`, description: 'combined + %T (seconds)' },
  vhost_common: { dialect: 'apache', format: `%v ${COMMON}`, description: 'Apache common with the virtual host' },
  vhost_combined: {
    dialect: 'apache',
    format: `%v:%p ${COMMON.replace('%b', '%O')} "%{Referer}i" "%{User-Agent}i"`,
    description: 'Debian/Ubuntu `vhost_combined`',
  },
  nginx_combined: { dialect: 'nginx', format: NGINX_COMBINED, description: 'nginx predefined `combined`' },
  nginx_main: { dialect: 'nginx', format: NGINX_MAIN, description: 'nginx.conf sample `main`' },
  nginx_combined_request_time: {
    dialect: 'nginx',
    format: `${NGINX_COMBINED} $request_time`,
    description: 'nginx combined + $request_time',
  },
  nginx_timed_combined: {
    dialect: 'nginx',
    format: `${NGINX_COMBINED} $request_time $upstream_response_time $pipe`,
    description: 'the widespread `timed_combined`',
  },
  nginx_main_request_time: {
    dialect: 'nginx',
    format: `${NGINX_MAIN} $request_time`,
    description: 'nginx main + $request_time',
  },
  nginx_main_upstream: {
    dialect: 'nginx',
    format: `${NGINX_MAIN} $request_time $upstream_response_time $upstream_addr`,
    description: 'nginx main + request time, upstream time and address',
  },
  nginx_upstream_time: {
    dialect: 'nginx',
    format:
      `${NGINX_COMBINED} rt=$request_time uct="$upstream_connect_time" ` +
      'uht="$upstream_header_time" urt="$upstream_response_time"',
    description: 'the NGINX blog `upstream_time` format',
  },
} as const satisfies Record<string, BuiltinTemplate>;

export type BuiltinTemplateName = keyof typeof BUILTIN_TEMPLATES;
export const ERROR_FORMATS = ['apache_error', 'nginx_error', 'error_log'] as const;
/** Every built-in name, in the order the schema and docs list them. */
export const BUILTIN_NAMES = [
  'common',
  'combined',
  'combinedio',
  'combined_usec',
  'combined_sec',
  'vhost_common',
  'vhost_combined',
  'nginx_combined',
  'nginx_main',
  'nginx_combined_request_time',
  'nginx_timed_combined',
  'nginx_main_request_time',
  'nginx_main_upstream',
  'nginx_upstream_time',
  'json',
  ...ERROR_FORMATS,
] as const satisfies readonly (BuiltinTemplateName | 'json' | (typeof ERROR_FORMATS)[number])[];

/**
 * What `format: auto` tries, in order of preference when two fit equally (%D before %T: both are bare
 * integers). `nginx_combined` is left out: it is `combined` written in nginx variables. The error-log
 * formats come last; their records leave on the `error_log` port.
 */
export const AUTO_CANDIDATES = [
  'combined',
  'common',
  'combinedio',
  'combined_usec',
  'combined_sec',
  'vhost_combined',
  'vhost_common',
  'nginx_main',
  'nginx_combined_request_time',
  'nginx_timed_combined',
  'nginx_main_request_time',
  'nginx_main_upstream',
  'nginx_upstream_time',
  'json',
  'apache_error',
  'nginx_error',
] as const;
