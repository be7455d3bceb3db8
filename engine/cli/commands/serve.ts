/**
 * `etl serve`: the daemon, until SIGINT/SIGTERM. The first signal drains every pipeline and writes its
 * checkpoint, as `etl apply` does; a second one (or the shutdown deadline) aborts the pipelines still draining.
 * SIGHUP rescans the config directory at once.
 */
import { type SecurityLayer, startDaemon } from '../../serve/daemon.ts';
import { createLogger, type LogFormat, type LogLevel } from '../../telemetry/logger.ts';

/** The security layer's flags (engine/server/security); the layer is on with `apiKeys`. */
export interface ServeSecurityOptions {
  apiKeys: boolean;
  /** The key store and audit log: embedded under `<dataDir>/security`, or on this server. */
  dataDir: string;
  postgresUrl?: string;
  tlsCert?: string;
  tlsKey?: string;
  allowPlainHttp: boolean;
  /** Redis for rate-limit counters shared by daemons; without it, each daemon counts its own. */
  redisUrl?: string;
  /** Requests per key (per client address without a key) per minute. */
  rateLimit: number;
}

export interface ServeOptions {
  listen: string;
  configDir?: string;
  logLevel?: LogLevel;
  logFormat: LogFormat;
  err: NodeJS.WritableStream;
  security?: ServeSecurityOptions;
  /** Process signals to honour; tests pass an emitter of their own. */
  signals?: NodeJS.EventEmitter;
}

/** `host:port`, `[v6]:port` or `:port`. */
export function parseListen(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text.trim());
  const port = Number(match?.[3]);
  if (!match || port > 65535) throw new Error(`--listen: expected host:port, got ${text}`);
  return { host: match[1] ?? (match[2] || '127.0.0.1'), port };
}

export async function runServe(options: ServeOptions): Promise<number> {
  const { host, port } = parseListen(options.listen);
  const security = await securityFor(options, host);
  const daemon = await startDaemon({
    host,
    port,
    ...(security ? { security } : {}),
    ...(options.configDir ? { configDir: options.configDir } : {}),
    ...(options.logLevel ? { logLevel: options.logLevel } : {}),
    logFormat: options.logFormat,
    logStream: options.err,
    logColorize: (options.err as { isTTY?: boolean }).isTTY === true && !process.env.NO_COLOR,
  });
  const signals = options.signals ?? process;
  await new Promise<void>((resolve) => {
    let signalled = false;
    const onSignal = (signal: string) => {
      if (signalled) {
        options.err.write(`${signal} again: aborting the pipelines still draining\n`);
        daemon.abort();
        return;
      }
      signalled = true;
      options.err.write(`${signal}: draining every pipeline and writing checkpoints (send it again to abort)\n`);
      daemon.shutdown().then(resolve, resolve);
    };
    for (const signal of ['SIGINT', 'SIGTERM'] as const) signals.on(signal, onSignal);
    // SIGHUP, as daemons take it: read the config directory again now.
    signals.on('SIGHUP', () => void daemon.configDir?.scan());
  });
  return 0;
}

/** The security layer the flags ask for, or undefined without `--api-keys`. */
async function securityFor(options: ServeOptions, host: string): Promise<SecurityLayer | undefined> {
  const flags = options.security;
  if (!flags?.apiKeys) {
    if (flags?.tlsCert || flags?.tlsKey || flags?.allowPlainHttp) {
      throw new Error('--tls-cert, --tls-key and --allow-plain-http belong to the security layer: add --api-keys');
    }
    return undefined;
  }
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
    throw new Error('--tls-cert and --tls-key go together');
  }
  const { assertListenAllowed, securityLayer } = await import('../../server/security/index.ts');
  const tls = flags.tlsCert && flags.tlsKey ? { certFile: flags.tlsCert, keyFile: flags.tlsKey } : undefined;
  assertListenAllowed(host, { tls: tls !== undefined, allowPlainHttp: flags.allowPlainHttp });
  return securityLayer({
    tls,
    allowPlainHttp: flags.allowPlainHttp,
    store: { dataDir: flags.dataDir, postgresUrl: flags.postgresUrl },
    rateLimit: { max: flags.rateLimit, timeWindowMs: 60_000, redis: flags.redisUrl },
    logger: createLogger({
      ...(options.logLevel ? { level: options.logLevel } : {}),
      format: options.logFormat,
      stream: options.err,
      bindings: { pipeline: 'serve' },
    }),
  });
}
