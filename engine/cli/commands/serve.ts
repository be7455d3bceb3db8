/**
 * `etl serve`: the daemon, until SIGINT/SIGTERM. The first signal drains every pipeline and writes its
 * checkpoint, as `etl apply` does; a second one (or the shutdown deadline) aborts the pipelines still draining.
 * SIGHUP rescans the config directory at once.
 */
import { startDaemon } from '../../serve/daemon.ts';
import type { LogFormat, LogLevel } from '../../telemetry/logger.ts';

export interface ServeOptions {
  listen: string;
  configDir?: string;
  logLevel?: LogLevel;
  logFormat: LogFormat;
  err: NodeJS.WritableStream;
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
  const daemon = await startDaemon({
    host,
    port,
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
