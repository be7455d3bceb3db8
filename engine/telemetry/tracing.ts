/**
 * OTLP/HTTP tracing: one span per batch per stage, each the child of the span of the stage the batch came
 * from, so a batch is one trace from its source (or the W3C parent it arrived with) to every sink; a commit
 * span per sink per checkpoint links the batches it made durable. Loaded only when tracing is on, so a run
 * without it never pays for the SDK. Nothing is registered globally: no context manager, no
 * instrumentation; spans are parented explicitly through the context carried on the batch.
 */
import {
  type Attributes,
  type Context,
  defaultTextMapGetter,
  type Link,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { type ExportResult, ExportResultCode, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, detectResources, hostDetector, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  type ReadableSpan,
  type Sampler,
  type SpanExporter,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import packageJson from '../../package.json' with { type: 'json' };
import { errorMessage } from '../errors.ts';
import type { Logger } from '../operator.ts';
import type { BatchSpan, RemoteTraceContext, TraceParent } from './types.ts';

export interface TracingOptions {
  /** Full URL of the traces endpoint; undefined lets the exporter read OTEL_EXPORTER_OTLP_* itself. */
  readonly url: string | undefined;
  readonly serviceName: string;
  /** Names of the pipelines this process runs: the resource's `etl.pipeline`. */
  readonly pipelines: readonly string[];
  /** Share of traces started here that are recorded (`telemetry.traces.sample_ratio`); wins over the env. */
  readonly sampleRatio: number | undefined;
  /** Where OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG are read. */
  readonly env: NodeJS.ProcessEnv;
  /** Longest one export may take, retries included: an unreachable collector then never outlives shutdown. */
  readonly exportTimeoutMs: number;
  readonly logger: Logger;
}

export type StartBatch = (
  parent: TraceParent | undefined,
  recordsIn: number,
  bytes?: number,
  links?: readonly TraceParent[],
) => BatchSpan;

export interface TracingStage {
  readonly startBatch: StartBatch;
  remoteParent(carrier: RemoteTraceContext): TraceParent | undefined;
  commit(checkpointId: number, startedAt: number, batches: readonly TraceParent[]): void;
}

export interface Tracing {
  /** The span starters of one stage; its constant attributes are built once. */
  stage(pipeline: string, stageId: string, kind: string, type: string): TracingStage;
  /** Exports what is buffered and stops; false when the deadline passed first. */
  shutdown(timeoutMs: number): Promise<boolean>;
}

/**
 * The batch of a trace that is not sampled, and every later stage's batch of it: one shared object, so an
 * unsampled batch allocates nothing past its source.
 */
const UNSAMPLED_CONTEXT: TraceParent = Object.freeze({ unsampled: true });
const UNSAMPLED: BatchSpan = Object.freeze({ context: UNSAMPLED_CONTEXT, sampled: false, end() {} });

const propagator = new W3CTraceContextPropagator();

export function startTracing(options: TracingOptions): Tracing {
  const exporter = new ReportingExporter(
    new OTLPTraceExporter({
      timeoutMillis: options.exportTimeoutMs,
      ...(options.url === undefined ? {} : { url: options.url }),
    }),
    options.logger,
  );
  const resource = defaultResource()
    .merge(detectResources({ detectors: [hostDetector] }))
    .merge(
      resourceFromAttributes({
        'service.name': options.serviceName,
        'service.version': packageJson.version,
        ...(options.pipelines.length > 0 ? { 'etl.pipeline': options.pipelines.join(',') } : {}),
      }),
    );
  // The standard OTEL_BSP_* variables, which this SDK no longer reads itself: a run of many small batches
  // sampled at 100% fills the default queue (2048 spans) faster than it is exported, and drops the rest.
  const processor = new BatchSpanProcessor({
    exporter,
    ...positive('maxQueueSize', options.env.OTEL_BSP_MAX_QUEUE_SIZE),
    ...positive('maxExportBatchSize', options.env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE),
    ...positive('scheduledDelayMillis', options.env.OTEL_BSP_SCHEDULE_DELAY),
  });
  const provider = new TracerProvider({
    resource,
    sampler: samplerFor(options.sampleRatio, options.env, options.logger),
    spanProcessors: [processor],
  });
  // Spans that link sampled batches (commits, windows) are recorded whatever the ratio: the batches they
  // link were sampled already, and a link to a span nobody sees is worth nothing. Same processor, same resource.
  const linkedProvider = new TracerProvider({ resource, sampler: new AlwaysOnSampler(), spanProcessors: [processor] });
  const tracer = provider.getTracer('etl', packageJson.version);
  const linkedTracer = linkedProvider.getTracer('etl', packageJson.version);
  let stopping: Promise<boolean> | undefined;

  return {
    stage(pipeline, stageId, kind, type) {
      const attributes: Attributes = {
        'etl.pipeline': pipeline,
        'etl.stage': stageId,
        'etl.stage.kind': kind,
        'etl.stage.type': type,
      };
      const spanOptions = { kind: SpanKind.INTERNAL, attributes };
      const startBatch: StartBatch = (parent, recordsIn, bytes, links) => {
        if (parent === UNSAMPLED_CONTEXT) return UNSAMPLED;
        const span =
          links !== undefined && links.length > 0
            ? linkedTracer.startSpan(stageId, { ...spanOptions, links: toLinks(links) }, asContext(parent))
            : tracer.startSpan(stageId, spanOptions, asContext(parent));
        if (!span.isRecording()) return UNSAMPLED;
        span.setAttribute('etl.records.in', recordsIn);
        if (bytes !== undefined) span.setAttribute('etl.bytes', bytes);
        return new SdkBatchSpan(span);
      };
      return {
        startBatch,
        remoteParent(carrier) {
          const context = propagator.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter);
          return trace.getSpanContext(context) === undefined ? undefined : context;
        },
        commit(checkpointId, startedAt, batches) {
          if (batches.length === 0) return;
          const span = startCommit(linkedTracer, stageId, attributes, startedAt, batches);
          span.setAttribute('etl.checkpoint.id', checkpointId);
          span.end();
        },
      };
    },
    shutdown(timeoutMs) {
      stopping ??= withDeadline(provider.shutdown(), timeoutMs);
      return stopping;
    },
  };
}

/**
 * The pipeline's `sample_ratio`, else the standard OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, else
 * every trace. Ratios apply to traces started here; a batch that arrived with a W3C parent follows its
 * parent's decision (parent-based), so a trace is never cut in two.
 */
export function samplerFor(ratio: number | undefined, env: NodeJS.ProcessEnv, logger: Logger): Sampler {
  if (ratio !== undefined) return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  const name = env.OTEL_TRACES_SAMPLER?.trim().toLowerCase();
  const envRatio = () => {
    const text = env.OTEL_TRACES_SAMPLER_ARG?.trim();
    const value = text ? Number(text) : Number.NaN;
    if (value >= 0 && value <= 1) return value;
    if (text) logger.warn('OTEL_TRACES_SAMPLER_ARG is not a ratio between 0 and 1; sampling every trace', { text });
    return 1;
  };
  switch (name) {
    case undefined:
    case '':
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(envRatio());
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(envRatio()) });
    default:
      logger.warn('OTEL_TRACES_SAMPLER names no sampler this process knows; sampling every trace', { name });
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

function positive<K extends string>(key: K, text: string | undefined): Partial<Record<K, number>> {
  const value = text?.trim() ? Number(text) : Number.NaN;
  return Number.isInteger(value) && value > 0 ? ({ [key]: value } as Record<K, number>) : {};
}

function asContext(parent: TraceParent | undefined): Context {
  return parent === undefined ? ROOT_CONTEXT : (parent as Context);
}

function toLinks(contexts: readonly TraceParent[]): Link[] {
  const links: Link[] = [];
  for (const context of contexts) {
    const spanContext = trace.getSpanContext(context as Context);
    if (spanContext !== undefined) links.push({ context: spanContext });
  }
  return links;
}

function startCommit(
  tracer: Tracer,
  stageId: string,
  attributes: Attributes,
  startedAt: number,
  batches: readonly TraceParent[],
): Span {
  return tracer.startSpan(
    `commit ${stageId}`,
    {
      kind: SpanKind.INTERNAL,
      attributes: { ...attributes, 'etl.batches': batches.length },
      links: toLinks(batches),
      startTime: startedAt,
    },
    ROOT_CONTEXT,
  );
}

class SdkBatchSpan implements BatchSpan {
  readonly context: Context;
  readonly sampled = true;
  readonly #span: Span;

  constructor(span: Span) {
    this.#span = span;
    this.context = trace.setSpan(ROOT_CONTEXT, span);
  }

  get traceparent(): string {
    const { traceId, spanId, traceFlags } = this.#span.spanContext();
    return `00-${traceId}-${spanId}-${(traceFlags & 0xff).toString(16).padStart(2, '0')}`;
  }

  end(recordsOut: number, error?: unknown, deadLettered?: number): void {
    const span = this.#span;
    span.setAttribute('etl.records.out', recordsOut);
    if (deadLettered !== undefined && deadLettered > 0) span.setAttribute('etl.records.dead_lettered', deadLettered);
    if (error !== undefined) {
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(error) });
    }
    span.end();
  }
}

/** Says once that spans are being lost (collector down), and once that they flow again. */
class ReportingExporter implements SpanExporter {
  readonly #inner: SpanExporter;
  readonly #logger: Logger;
  #failing = false;

  constructor(inner: SpanExporter, logger: Logger) {
    this.#inner = inner;
    this.#logger = logger;
  }

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.#inner.export(spans, (result) => {
      if (result.code !== ExportResultCode.SUCCESS && !this.#failing) {
        this.#failing = true;
        this.#logger.warn('trace export failed; spans are dropped until the collector answers', {
          error: result.error === undefined ? undefined : errorMessage(result.error),
        });
      } else if (result.code === ExportResultCode.SUCCESS && this.#failing) {
        this.#failing = false;
        this.#logger.info('trace export recovered');
      }
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush?.() ?? Promise.resolve();
  }
}

async function withDeadline(work: Promise<void>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<false>((resolve) => {
    timer = setTimeout(resolve, timeoutMs, false);
    timer.unref();
  });
  try {
    return await Promise.race([work.then(() => true), deadline]);
  } finally {
    clearTimeout(timer);
  }
}
