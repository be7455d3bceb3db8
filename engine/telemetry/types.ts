/**
 * What the runtime needs from telemetry. The runtime (never an operator) opens one span per batch per
 * stage and counts records with fixed metric names; operators get `OperatorMetrics` for their own figures.
 */
import type { CircuitState, OperatorMetrics, SourceState } from '../operator.ts';

export type { CircuitState, SourceState };

/** Opaque trace context carried on a batch so the next stage's span becomes its child. */
export type TraceParent = unknown;

/** W3C Trace Context a batch arrived with (HTTP headers, queue message headers): its trace is continued. */
export interface RemoteTraceContext {
  /** `00-<trace id>-<parent span id>-<flags>`; a malformed one is ignored (the batch starts a trace). */
  readonly traceparent: string;
  readonly tracestate?: string;
}

export interface BatchSpan {
  /** Context to hand to the next stage's span. */
  readonly context: TraceParent;
  /** Recorded and exported: only such spans are worth linking to (a commit, a window's output). */
  readonly sampled: boolean;
  /** The span as a W3C `traceparent` header, for a sink that carries the trace on (message headers). */
  readonly traceparent?: string;
  /**
   * Ends the span. `deadLettered`: records of the batch this stage sent to its dead_letter port, set as
   * `etl.records.dead_lettered`; an error marks the span ERROR with an `exception` event.
   */
  end(recordsOut: number, error?: unknown, deadLettered?: number): void;
}

export interface StageTelemetry {
  /**
   * Starts the span for one batch in this stage; undefined when tracing is off (then it costs nothing).
   * `links`: contexts of other batches the span stands for (a window emitted at a tick).
   */
  startBatch(
    parent: TraceParent | undefined,
    recordsIn: number,
    bytes?: number,
    links?: readonly TraceParent[],
  ): BatchSpan | undefined;
  /** The parent for a source's batch that arrived with W3C Trace Context; undefined when tracing is off. */
  remoteParent?(carrier: RemoteTraceContext): TraceParent | undefined;
  /**
   * Records the span of a sink's commit at a checkpoint: from `startedAt` (epoch ms, the cut) to now, linked
   * to the sampled batch spans it made durable. Nothing is recorded without links.
   */
  commit?(checkpointId: number, startedAt: number, batches: readonly TraceParent[]): void;
  /** etl_component_received_records_total / _received_bytes_total */
  received(records: number, bytes?: number): void;
  /** etl_component_sent_records_total{port} */
  sent(records: number, port: string): void;
  /** etl_component_errors_total{phase} */
  error(phase: 'open' | 'read' | 'process' | 'write' | 'flush' | 'close' | 'commit', count?: number): void;
  /** etl_component_discarded_records_total{reason} */
  discarded(records: number, reason: string): void;
  /** etl_component_batches_total, and etl_component_batch_duration_seconds when `seconds` is given. */
  batch(seconds?: number): void;
  /** etl_component_dead_lettered_records_total: records this stage made dead letters of. */
  deadLettered(records: number): void;
  /** Sources: etl_source_read_bytes_total, etl_source_read_lines_total (`lines` 0 for sources of other records). */
  read(bytes: number, lines: number): void;
  /** Sources: etl_source_credit_wait_seconds, how long a batch waited for a permit. */
  creditWait(seconds: number): void;
  /** Sources: etl_source_lag_bytes and etl_source_open_files, read at scrape. */
  sourceState(read: () => SourceState): void;
  /** Sinks: etl_sink_write_duration_seconds, one call of `write`. */
  writeTime(seconds: number): void;
  /** Sinks: etl_sink_commit_duration_seconds, the sink's part of one checkpoint (both phases). */
  commitTime(seconds: number): void;
  /** Sinks: etl_sink_retries_total. */
  retry(): void;
  /** Sinks: etl_sink_reconnects_total. */
  reconnected(): void;
  /** Sinks: etl_sink_circuit_state. */
  circuit(state: CircuitState): void;
  /**
   * Sinks: `records` made durable by a committed checkpoint (etl_sink_committed_records_total), and their
   * freshness: seconds from their event time and from their read time to the commit (undefined when unknown).
   */
  committed(records: number, eventAgeSeconds: number | undefined, readAgeSeconds: number | undefined): void;
}

/** Pipeline-wide series: etl_pipeline_up, the checkpoint series, the in-flight batches of every edge. */
export interface PipelineTelemetry {
  /** etl_pipeline_up */
  up(running: boolean): void;
  /** A checkpoint committed at `atMs` (epoch ms) after `seconds` (undefined: one committed by an earlier run). */
  checkpointCommitted(atMs: number, seconds?: number): void;
  /** A checkpoint was due and found nothing new to commit at `atMs`: the committed one is still current. */
  checkpointCurrent(atMs: number): void;
  /** The counter of batches on the edge from `from` (`stage` or `stage.port`) to stage `to`. */
  edge(from: string, to: string): EdgeTelemetry;
}

/** etl_edge_inflight_batches: plain counts, read at scrape. */
export interface EdgeTelemetry {
  sent: number;
  done: number;
}

export interface Telemetry {
  readonly tracing: boolean;
  stage(pipeline: string, stageId: string, kind: string, type: string): StageTelemetry;
  pipeline(name: string): PipelineTelemetry;
  /** Metrics an operator may create for itself, labelled with pipeline and stage. */
  operatorMetrics(pipeline: string, stageId: string): OperatorMetrics;
  /** Prometheus text exposition of every metric. */
  metricsText(): Promise<string>;
  /** Flushes exporters and closes servers. Idempotent. */
  shutdown(): Promise<void>;
}

/** Live figures of one run, for the progress line and the final summary. */
export interface RunStats {
  pipeline: string;
  elapsedMs: number;
  /** Records read by sources. */
  recordsIn: number;
  /** Records written by sinks, dead-letter sinks aside. */
  recordsOut: number;
  /** Records each sink acknowledged, by sink id, in the order they are declared. */
  sinks: Record<string, SinkStats>;
  /** Records routed to a dead_letter port. */
  rejected: number;
  /**
   * The same by the stage that rejected them, in the order first seen: a record several stages reject (a rollup
   * that refuses a late record another stage stored) counts once per stage, so the total may exceed what was read.
   */
  rejectedBy?: Record<string, number>;
  /** Stage failures (whole batches), and inputs a source could not read completely. */
  errors: number;
  /** Inputs a source could not read completely (`SourceOutput.inputError`); `etl apply` then exits 1. */
  inputErrors: number;
  bytesRead: number;
  /** Known size of finite inputs, for percent and ETA. */
  bytesTotal?: number;
  /** Distinct warnings logged during the run (the first few), to repeat in the summary. */
  warnings: RunWarning[];
  /** What stages told of the run once it was over (`Transform.summarize`), in stage order. */
  reports: StageReportEntry[];
}

export interface StageReportEntry {
  readonly stage: string;
  readonly lines: readonly string[];
  /** Set when the run failed because of it. */
  readonly failure?: string;
  /** Figures for the run audit log (`StageReport.counts`). */
  readonly counts?: Readonly<Record<string, number>>;
}

export interface SinkStats {
  written: number;
  /** The sink reads only dead-letter ports. */
  readonly deadLetters: boolean;
}

export interface RunWarning {
  /** Stage that logged it; undefined for the pipeline itself. */
  readonly stage: string | undefined;
  readonly message: string;
  /** How many times it was logged. */
  count: number;
}
