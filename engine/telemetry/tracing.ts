/**
 * OTLP/HTTP tracing: one span per batch per stage, each the child of the span of the stage the batch came
 * from, so a batch is one trace from its source to every sink. Loaded only when tracing is on, so a run
 * without it never pays for the SDK. Nothing is registered globally: no context manager, no
 * instrumentation; spans are parented explicitly through the context carried on the batch.
 */
import {
  type Attributes,
  type Context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter, TracerProvider } from '@opentelemetry/sdk-trace';
import packageJson from '../../package.json' with { type: 'json' };
import { errorMessage } from '../errors.ts';
import type { Logger } from '../operator.ts';
import type { BatchSpan, TraceParent } from './types.ts';

export interface TracingOptions {
  /** Full URL of the traces endpoint; undefined lets the exporter read OTEL_EXPORTER_OTLP_* itself. */
  readonly url: string | undefined;
  readonly serviceName: string;
  /** Longest one export may take, retries included: an unreachable collector then never outlives shutdown. */
  readonly exportTimeoutMs: number;
  readonly logger: Logger;
}

export type StartBatch = (parent: TraceParent | undefined, recordsIn: number, bytes?: number) => BatchSpan;

export interface Tracing {
  /** The span starter of one stage; its constant attributes are built once. */
  stage(pipeline: string, stageId: string, kind: string, type: string): StartBatch;
  /** Exports what is buffered and stops; false when the deadline passed first. */
  shutdown(timeoutMs: number): Promise<boolean>;
}

export function startTracing(options: TracingOptions): Tracing {
  const exporter = new ReportingExporter(
    new OTLPTraceExporter({
      timeoutMillis: options.exportTimeoutMs,
      ...(options.url === undefined ? {} : { url: options.url }),
    }),
    options.logger,
  );
  const provider = new TracerProvider({
    resource: defaultResource().merge(
      resourceFromAttributes({ 'service.name': options.serviceName, 'service.version': packageJson.version }),
    ),
    spanProcessors: [new BatchSpanProcessor({ exporter })],
  });
  const tracer = provider.getTracer('etl', packageJson.version);
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
      return (parent, recordsIn, bytes) => {
        const span = tracer.startSpan(stageId, spanOptions, parent === undefined ? ROOT_CONTEXT : (parent as Context));
        span.setAttribute('etl.records.in', recordsIn);
        if (bytes !== undefined) span.setAttribute('etl.bytes', bytes);
        return new SdkBatchSpan(span);
      };
    },
    shutdown(timeoutMs) {
      stopping ??= withDeadline(provider.shutdown(), timeoutMs);
      return stopping;
    },
  };
}

class SdkBatchSpan implements BatchSpan {
  readonly context: Context;
  readonly #span: Span;

  constructor(span: Span) {
    this.#span = span;
    this.context = trace.setSpan(ROOT_CONTEXT, span);
  }

  end(recordsOut: number, error?: unknown): void {
    const span = this.#span;
    span.setAttribute('etl.records.out', recordsOut);
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
