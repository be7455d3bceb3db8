/**
 * How the daemon's server listens: TLS 1.3 only when a certificate is configured, plain HTTP only on a
 * loopback address unless the operator allows it, and logs that never carry credentials. These are
 * options of `fastify(...)` and `listen(...)`, which a plugin cannot change afterwards: the daemon takes
 * them from here.
 */
import { readFileSync } from 'node:fs';
import type { SecureServerOptions } from 'node:http2';
import ipaddr from 'ipaddr.js';
import { EtlError } from '../../errors.ts';

export interface TlsFiles {
  /** PEM files. */
  readonly certFile: string;
  readonly keyFile: string;
}

export interface TransportOptions {
  readonly tls?: TlsFiles | undefined;
  /** Largest request body accepted, in bytes. */
  readonly bodyLimitBytes?: number | undefined;
}

export const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024;

/** Logged header names whose values are replaced (pino's redact paths). */
export const REDACTED_LOG_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
] as const;

/** Options for `fastify(...)`: TLS 1.3 when `tls` is given, the body limit, redacted log paths. */
export function serverOptions(options: TransportOptions): {
  https?: Pick<SecureServerOptions, 'cert' | 'key' | 'minVersion'>;
  bodyLimit: number;
} {
  const bodyLimit = options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  if (!options.tls) return { bodyLimit };
  return {
    bodyLimit,
    https: {
      cert: readFileSync(options.tls.certFile),
      key: readFileSync(options.tls.keyFile),
      // TLS 1.2 and older clients fail the handshake.
      minVersion: 'TLSv1.3',
    },
  };
}

/** True for `localhost`, 127.0.0.0/8, ::1 and IPv4-mapped loopback addresses. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (!ipaddr.isValid(bare)) return false;
  const address = ipaddr.process(bare);
  return address.range() === 'loopback';
}

/**
 * Refuses to listen with plain HTTP on an address other than loopback (`0.0.0.0`, `::`, a LAN address),
 * unless `allowPlainHttp`: API keys would cross the network in clear.
 */
export function assertListenAllowed(host: string, options: { tls: boolean; allowPlainHttp?: boolean }): void {
  if (options.tls || options.allowPlainHttp === true || isLoopback(host)) return;
  throw new EtlError(
    'ETL_CFG_INVALID',
    `refusing plain HTTP on ${host}: API keys would cross the network unencrypted; configure a TLS certificate, ` +
      'listen on 127.0.0.1, or allow plain HTTP explicitly',
  );
}
