/**
 * The security layer as `etl serve` takes it (`startDaemon({ security })`): the options of `fastify(...)`
 * it needs, its registration (before the daemon's routes), and whether the server may listen beyond
 * loopback, which it may when the layer authenticates every call and keys cannot cross a network in clear.
 */
import type { FastifyInstance } from 'fastify';
import { registerSecurity, type SecurityOptions } from './plugin.ts';
import { serverOptions, type TransportOptions } from './transport.ts';

export interface SecurityLayerOptions extends SecurityOptions, TransportOptions {}

export interface SecurityLayer {
  readonly serverOptions: ReturnType<typeof serverOptions>;
  register(app: FastifyInstance): Promise<void>;
  /** True with a TLS certificate, or when plain HTTP beyond loopback was explicitly allowed. */
  readonly allowsRemote: boolean;
}

/** Reads the certificate files now, so that a missing one fails before anything starts. */
export function securityLayer(options: SecurityLayerOptions): SecurityLayer {
  return {
    serverOptions: serverOptions(options),
    register: (app) => registerSecurity(app, options),
    allowsRemote: options.tls !== undefined || options.allowPlainHttp === true,
  };
}
