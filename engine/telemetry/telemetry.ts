/**
 * The telemetry of one `etl` process: OTLP traces when asked for (pipeline setting or the standard
 * OTEL_* variables), Prometheus metrics always (served on a port when asked for).
 */
import type { TelemetrySettings } from '../config/types.ts';
import type { Logger, OperatorMetrics } from '../operator.ts';
import { createLogger } from './logger.ts';
import { EdgeCounters, MetricsRegistry, type PipelineCounters, type StageCounters } from './metrics.ts';
import type { MetricsServer } from './server.ts';
import type { Tracing, TracingStage } from './tracing.ts';
import type {
  BatchSpan,
  CircuitState,
  EdgeTelemetry,
  PipelineTelemetry,
  RemoteTraceContext,
  SourceState,
  StageTelemetry,
  Telemetry,
  TraceParent,
} from './types.ts';

export interface TelemetryOptions {
  /** Default `etl`; OTEL_SERVICE_NAME wins over it. */
  serviceName?: string;
  /** Where OTEL_*, ETL_METRICS_HOST and ETL_LOG_LEVEL are read; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** For telemetry's own warnings (collector unreachable, slow flush); default: pretty lines on stderr. */
  logger?: Logger;
  /** How long `shutdown` waits for buffered spans to be exported; default 5 s. */
  shutdownTimeoutMs?: number;
  /** Pipelines this process runs, for the traces' resource (`etl.pipeline`). */
  pipelines?: readonly string[];
}

export interface EtlTelemetry extends Telemetry {
  /** Where `/metrics` is served, when `prometheusPort` is set. */
  readonly metricsAddress: { readonly host: string; readonly port: number } | undefined;
}

const DEFAULT_SHUTDOWN_TIMEOUT_MS = 5_000;
const TRACES_PATH = '/v1/traces';

/** Whether spans are exported, following the OpenTelemetry SDK environment conventions. */
export function tracesEnabled(settings: TelemetrySettings, env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  if (settings.traces === 'otlp') return true;
  const exporters = env.OTEL_TRACES_EXPORTER?.trim();
  if (exporters) return exporters.split(',').some((name) => name.trim().toLowerCase() === 'otlp');
  return Boolean(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim());
}

/**
 * The traces URL. `otlpEndpoint` and OTEL_EXPORTER_OTLP_ENDPOINT are base URLs (`/v1/traces` is appended
 * unless already there); OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as is, as the specification says.
 */
export function tracesUrl(settings: TelemetrySettings, env: NodeJS.ProcessEnv): string | undefined {
  if (settings.otlpEndpoint) return withTracesPath(settings.otlpEndpoint);
  const signal = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (signal) return signal;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  return base ? withTracesPath(base) : undefined;
}

/** OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, else OTEL_EXPORTER_OTLP_TIMEOUT, in milliseconds. */
function exportTimeoutFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const text = env.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT?.trim() || env.OTEL_EXPORTER_OTLP_TIMEOUT?.trim();
  const ms = text ? Number(text) : Number.NaN;
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}

function withTracesPath(endpoint: string): string {
  const trimmed = endpoint.trim().replace(/\/+$/, '');
  return trimmed.endsWith(TRACES_PATH) ? trimmed : trimmed + TRACES_PATH;
}

export async function createTelemetry(
  settings: TelemetrySettings,
  options: TelemetryOptions = {},
): Promise<EtlTelemetry> {
  const env = options.env ?? process.env;
  const logger = options.logger ?? createLogger({ format: 'pretty', stream: process.stderr, env });
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;
  const metrics = new MetricsRegistry();

  let tracing: Tracing | undefined;
  if (tracesEnabled(settings, env)) {
    const { startTracing } = await import('./tracing.ts');
    tracing = startTracing({
      url: tracesUrl(settings, env),
      serviceName: env.OTEL_SERVICE_NAME?.trim() || options.serviceName || 'etl',
      pipelines: options.pipelines ?? [],
      sampleRatio: settings.sampleRatio,
      env,
      exportTimeoutMs: Math.min(shutdownTimeoutMs, exportTimeoutFromEnv(env) ?? Number.POSITIVE_INFINITY),
      logger,
    });
  }

  let server: MetricsServer | undefined;
  if (settings.prometheusPort !== undefined) {
    const host = env.ETL_METRICS_HOST?.trim() || '127.0.0.1';
    try {
      // Imported only here: node:http and the registry are a good part of the start of a run that serves nothing.
      const { serveMetrics } = await import('./server.ts');
      server = await serveMetrics(metrics.registry, host, settings.prometheusPort);
    } catch (error) {
      await tracing?.shutdown(shutdownTimeoutMs);
      throw error;
    }
  }

  const stages = new Map<StageCounters, StageTelemetry>();
  let stopping: Promise<void> | undefined;

  return {
    tracing: tracing !== undefined,
    metricsAddress: server === undefined ? undefined : { host: server.host, port: server.port },
    stage(pipeline, stageId, kind, type) {
      const counters = metrics.stage(pipeline, stageId, kind, type);
      let stage = stages.get(counters);
      if (stage === undefined) {
        stage = new RuntimeStage(counters, tracing?.stage(pipeline, stageId, kind, type));
        stages.set(counters, stage);
      }
      return stage;
    },
    pipeline(name) {
      return new RuntimePipeline(metrics.pipeline(name));
    },
    operatorMetrics(pipeline: string, stageId: string): OperatorMetrics {
      return metrics.operatorMetrics(pipeline, stageId);
    },
    metricsText() {
      return metrics.text();
    },
    shutdown() {
      stopping ??= shutdownAll(tracing, server, shutdownTimeoutMs, logger);
      return stopping;
    },
  };
}

async function shutdownAll(
  tracing: Tracing | undefined,
  server: MetricsServer | undefined,
  timeoutMs: number,
  logger: Logger,
): Promise<void> {
  const flushing = tracing?.shutdown(timeoutMs).then(
    (flushed) => {
      if (!flushed) logger.warn('trace export did not finish in time; remaining spans are dropped', { timeoutMs });
    },
    // The exporter has already warned about the failed export itself.
    (error: unknown) => logger.debug('trace export failed on shutdown', { error }),
  );
  await Promise.all([flushing, server?.close()]);
}

const noSpan = (): undefined => undefined;

/** What the runtime calls per batch: plain additions to the stage's totals, and a span when tracing. */
class RuntimeStage implements StageTelemetry {
  readonly startBatch: (
    parent: TraceParent | undefined,
    recordsIn: number,
    bytes?: number,
    links?: readonly TraceParent[],
  ) => BatchSpan | undefined;
  readonly remoteParent?: (carrier: RemoteTraceContext) => TraceParent | undefined;
  readonly commit?: (checkpointId: number, startedAt: number, batches: readonly TraceParent[]) => void;
  readonly #counters: StageCounters;

  constructor(counters: StageCounters, tracing: TracingStage | undefined) {
    this.#counters = counters;
    this.startBatch = tracing?.startBatch ?? noSpan;
    if (tracing) {
      this.remoteParent = tracing.remoteParent;
      this.commit = tracing.commit;
    }
  }

  received(records: number, bytes?: number): void {
    const counters = this.#counters;
    // `> 0` also keeps NaN out: a counter must never go down.
    if (records > 0) counters.receivedRecords += records;
    if (bytes !== undefined && bytes > 0) counters.receivedBytes += bytes;
  }

  sent(records: number, port: string): void {
    if (records > 0) add(this.#counters.sentRecords, port, records);
  }

  error(phase: Parameters<StageTelemetry['error']>[0], count = 1): void {
    if (count > 0) add(this.#counters.errors, phase, count);
  }

  discarded(records: number, reason: string): void {
    if (records > 0) add(this.#counters.discardedRecords, reason, records);
  }

  batch(seconds?: number): void {
    const counters = this.#counters;
    counters.batches++;
    if (seconds !== undefined) counters.batchDuration.observe(seconds);
  }

  deadLettered(records: number): void {
    if (records > 0) this.#counters.deadLettered += records;
  }

  read(bytes: number, lines: number): void {
    const source = this.#counters.source;
    if (source === undefined) return;
    if (bytes > 0) source.readBytes += bytes;
    if (lines > 0) source.readLines += lines;
  }

  creditWait(seconds: number): void {
    this.#counters.source?.creditWait.observe(seconds);
  }

  sourceState(read: () => SourceState): void {
    const source = this.#counters.source;
    if (source !== undefined) source.state = read;
  }

  writeTime(seconds: number): void {
    this.#counters.sink?.writeDuration.observe(seconds);
  }

  commitTime(seconds: number): void {
    this.#counters.sink?.commitDuration.observe(seconds);
  }

  retry(): void {
    const sink = this.#counters.sink;
    if (sink !== undefined) sink.retries++;
  }

  reconnected(): void {
    const sink = this.#counters.sink;
    if (sink !== undefined) sink.reconnects++;
  }

  circuit(state: CircuitState): void {
    const sink = this.#counters.sink;
    if (sink !== undefined) sink.circuit = state;
  }

  committed(records: number, eventAgeSeconds: number | undefined, readAgeSeconds: number | undefined): void {
    const sink = this.#counters.sink;
    if (sink === undefined || !(records > 0)) return;
    sink.committedRecords += records;
    if (eventAgeSeconds !== undefined) sink.freshnessEvent.observe(Math.max(0, eventAgeSeconds), records);
    if (readAgeSeconds !== undefined) sink.freshnessRead.observe(Math.max(0, readAgeSeconds), records);
  }
}

class RuntimePipeline implements PipelineTelemetry {
  readonly #counters: PipelineCounters;

  constructor(counters: PipelineCounters) {
    this.#counters = counters;
  }

  up(running: boolean): void {
    const counters = this.#counters;
    if (running && counters.up === 0) counters.startedMs = Date.now();
    // Batches a failed run left on its edges are no backlog of the next run.
    if (!running) for (const edge of counters.edges.values()) edge.done = edge.sent;
    counters.up = running ? 1 : 0;
  }

  checkpointCommitted(atMs: number, seconds?: number): void {
    const counters = this.#counters;
    if (seconds !== undefined) counters.checkpointDuration.observe(seconds);
    if (Number.isFinite(atMs) && atMs > (counters.lastCheckpointMs ?? Number.NEGATIVE_INFINITY)) {
      counters.lastCheckpointMs = atMs;
    }
  }

  checkpointCurrent(atMs: number): void {
    const counters = this.#counters;
    if (Number.isFinite(atMs) && atMs > (counters.currentMs ?? Number.NEGATIVE_INFINITY)) counters.currentMs = atMs;
  }

  edge(from: string, to: string): EdgeTelemetry {
    const counters = this.#counters;
    const key = `${from}\u0000${to}`;
    let edge = counters.edges.get(key);
    if (edge === undefined) {
      edge = new EdgeCounters({ pipeline: counters.name, from, to });
      counters.edges.set(key, edge);
    }
    return edge;
  }
}

function add<K>(totals: Map<K, number>, key: K, value: number): void {
  totals.set(key, (totals.get(key) ?? 0) + value);
}
