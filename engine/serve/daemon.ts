/**
 * `etl serve`: many pipelines in one process, behind a REST API (Fastify, an OpenAPI document at
 * `/docs/json`, its page at `/docs`), optionally driven by a config directory. Each pipeline has its own
 * run (credit, checkpoints, failure domain); they share the process's telemetry, told apart by the
 * `pipeline` label.
 */
import { stat } from 'node:fs/promises';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import ipaddr from 'ipaddr.js';
import { Registry } from 'prom-client';
import type { PipelineSpec } from '../config/types.ts';
import type { Logger } from '../operator.ts';
import { createLogger, type LogFormat, type LogLevel } from '../telemetry/logger.ts';
import { createTelemetry } from '../telemetry/telemetry.ts';
import type { Telemetry } from '../telemetry/types.ts';
import { registerRoutes } from './api.ts';
import { ConfigDir } from './config-dir.ts';
import { Supervisor } from './supervisor.ts';

/**
 * What a security layer (authentication, roles, rate limits, audit, TLS) gives the daemon. Routes carry
 * `config.role` (`public`, `viewer`, `operator`, `admin`) for it to check.
 */
export interface SecurityLayer {
  /** Options of `fastify(...)` it needs (TLS, body limit, log redaction): they cannot be set later. */
  readonly serverOptions?: Partial<FastifyServerOptions> & Record<string, unknown>;
  /** Registers its hooks and routes on the app, before the daemon's routes. */
  register(app: FastifyInstance): Promise<void>;
  /** Whether the server may listen beyond loopback (only when it authenticates every call). */
  readonly allowsRemote: boolean;
}

export interface DaemonOptions {
  readonly host: string;
  readonly port: number;
  readonly configDir?: string;
  readonly security?: SecurityLayer;
  readonly logLevel?: LogLevel;
  readonly logFormat?: LogFormat;
  readonly logStream?: { write(chunk: string): unknown };
  /** Pretty format: colour the level (a terminal). */
  readonly logColorize?: boolean;
  readonly rescanIntervalMs?: number;
  /** First wait before a failed pipeline is started again. */
  readonly restartDelayMs?: number;
  /** Longest a graceful shutdown waits for pipelines to drain before aborting them. */
  readonly shutdownTimeoutMs?: number;
}

export interface Daemon {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly supervisor: Supervisor;
  readonly configDir: ConfigDir | undefined;
  readonly app: FastifyInstance;
  /** Stops watching, drains every pipeline and writes its checkpoint, then closes the server. Idempotent. */
  shutdown(): Promise<void>;
  /** Aborts the pipelines still draining (a second signal). */
  abort(): void;
}

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  if (options.configDir) {
    const info = await stat(options.configDir).catch(() => undefined);
    if (!info?.isDirectory()) throw new Error(`--config-dir ${options.configDir}: no such directory`);
  }
  const stream = options.logStream ?? process.stderr;
  const format = options.logFormat ?? 'pretty';
  const colorize = options.logColorize === true;
  const logger = createLogger({ level: options.logLevel, format, stream, colorize, bindings: { pipeline: 'serve' } });
  const telemetry = await createTelemetry({ traces: 'none' }, { logger });
  const registry = new Registry();
  const warnedPorts = new Set<string>();
  const pipelineLogger = (spec: PipelineSpec, stage: string | undefined): Logger => {
    if (spec.telemetry.prometheusPort !== undefined && !warnedPorts.has(spec.name)) {
      warnedPorts.add(spec.name);
      logger.warn(`pipeline ${spec.name}: telemetry.metrics.prometheus_port is not used by etl serve: see /metrics`);
    }
    const bindings = stage ? { pipeline: spec.name, stage } : { pipeline: spec.name };
    return createLogger({ level: options.logLevel, format, stream, colorize, secrets: spec.secrets, bindings });
  };
  const supervisor = new Supervisor({
    telemetry,
    registry,
    logger,
    pipelineLogger,
    ...(options.restartDelayMs === undefined ? {} : { restartDelayMs: options.restartDelayMs }),
  });
  const configDir = options.configDir
    ? new ConfigDir({
        dir: options.configDir,
        supervisor,
        logger,
        ...(options.rescanIntervalMs === undefined ? {} : { rescanIntervalMs: options.rescanIntervalMs }),
      })
    : undefined;

  const app = await buildApp({ supervisor, telemetry, registry, configDir, options });
  const host = listenHost(options, logger);
  try {
    await app.listen({ host, port: options.port });
  } catch (error) {
    await telemetry.shutdown();
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const url = `${options.security?.serverOptions?.https ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  logger.info(`API on ${url} (OpenAPI page at ${url}/docs)`);
  await configDir?.start();

  const deadline = new AbortController();
  let closing: Promise<void> | undefined;
  return {
    url,
    host,
    port,
    supervisor,
    configDir,
    app,
    abort: () => deadline.abort(),
    shutdown() {
      closing ??= (async () => {
        const timer = setTimeout(() => {
          logger.error('pipelines took too long to drain; aborting them (their last checkpoint stays)');
          deadline.abort();
        }, options.shutdownTimeoutMs ?? 30_000);
        timer.unref();
        try {
          await configDir?.close();
          await supervisor.shutdown(deadline.signal);
          logger.info('every pipeline stopped; checkpoints written');
        } finally {
          clearTimeout(timer);
          await app.close();
          await telemetry.shutdown();
        }
      })();
      return closing;
    },
  };
}

async function buildApp(parts: {
  supervisor: Supervisor;
  telemetry: Telemetry;
  registry: Registry;
  configDir: ConfigDir | undefined;
  options: DaemonOptions;
}): Promise<FastifyInstance> {
  const { options } = parts;
  const app = Fastify({ logger: false, ...(options.security?.serverOptions ?? {}) }) as unknown as FastifyInstance;
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'etl serve',
        description: 'Pipelines of the etl daemon: status, YAML, graph, apply, pause, resume, stop, delete.',
        version: '1',
      },
    },
  });
  if (options.security) await options.security.register(app);
  await app.register(async (scope) => {
    await registerRoutes(scope, {
      supervisor: parts.supervisor,
      telemetry: parts.telemetry,
      registry: parts.registry,
      ...(parts.configDir ? { configDir: parts.configDir } : {}),
      ...(options.configDir ? { configDirPath: options.configDir } : {}),
    });
  });
  await app.register(async (scope) => {
    // The OpenAPI page and document carry a role like every route: anyone may read them.
    scope.addHook('onRoute', (route) => {
      route.config = { ...(route.config ?? {}), role: 'public' };
    });
    await scope.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list' } });
  });
  await app.ready();
  return app;
}

/** Without a security layer the API has no authentication: it listens on loopback only, whatever was asked. */
function listenHost(options: DaemonOptions, logger: Logger): string {
  if (options.security?.allowsRemote) return options.host;
  if (isLoopback(options.host)) return options.host;
  logger.warn(
    `no security layer (API keys, TLS) is configured: listening on 127.0.0.1 instead of ${options.host}; ` +
      'the API is reachable from this machine only',
  );
  return '127.0.0.1';
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  try {
    return ipaddr.process(host).range() === 'loopback';
  } catch {
    return false;
  }
}
