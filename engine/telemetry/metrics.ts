/**
 * Prometheus metrics on a registry of our own. The runtime counts every batch of every stage, so stage
 * counters are plain numbers on a per-stage object (no label hashing on the hot path); they are copied
 * into the prom-client counters only when the registry is scraped. Operators' own metrics are plain numbers
 * too. prom-client itself (with the OpenTelemetry API it loads) is required only when the registry is first
 * asked for (a metrics port, a scrape): a run nobody scrapes, most of them, never loads it, and starts faster.
 */
import { createRequire } from 'node:module';
import type { Registry } from 'prom-client';
import type { OperatorMetrics } from '../operator.ts';
import { Buckets, COMMIT_BUCKETS, DURATION_BUCKETS, FRESHNESS_BUCKETS, HistogramFamily } from './histogram.ts';
import type { CircuitState, EdgeTelemetry, SourceState, StageTelemetry } from './types.ts';

type ErrorPhase = Parameters<StageTelemetry['error']>[0];

const STAGE_LABELS = ['pipeline', 'component_id', 'component_kind', 'component_type'] as const;
type StageLabels = Record<(typeof STAGE_LABELS)[number], string>;

/** Per-stage running totals; mutated by the runtime, read at scrape time. */
export class StageCounters {
  readonly labels: StageLabels;
  receivedRecords = 0;
  receivedBytes = 0;
  readonly sentRecords = new Map<string, number>();
  readonly errors = new Map<ErrorPhase, number>();
  readonly discardedRecords = new Map<string, number>();
  batches = 0;
  deadLettered = 0;
  readonly batchDuration = new Buckets(DURATION_BUCKETS);
  /** Set for sources only. */
  readonly source: SourceCounters | undefined;
  /** Set for sinks only. */
  readonly sink: SinkCounters | undefined;

  constructor(labels: StageLabels) {
    this.labels = labels;
    this.source = labels.component_kind === 'source' ? new SourceCounters() : undefined;
    this.sink = labels.component_kind === 'sink' ? new SinkCounters() : undefined;
  }
}

export class SourceCounters {
  readBytes = 0;
  readLines = 0;
  readonly creditWait = new Buckets(DURATION_BUCKETS);
  state: (() => SourceState) | undefined;
}

export const CIRCUIT_VALUES: Record<CircuitState, number> = { closed: 0, half_open: 1, open: 2 };

export class SinkCounters {
  readonly writeDuration = new Buckets(DURATION_BUCKETS);
  readonly commitDuration = new Buckets(COMMIT_BUCKETS);
  retries = 0;
  reconnects = 0;
  circuit: CircuitState = 'closed';
  committedRecords = 0;
  readonly freshnessEvent = new Buckets(FRESHNESS_BUCKETS);
  readonly freshnessRead = new Buckets(FRESHNESS_BUCKETS);
}

/** Pipeline-wide figures. */
export class PipelineCounters {
  readonly name: string;
  up = 0;
  readonly checkpointDuration = new Buckets(COMMIT_BUCKETS);
  /** Epoch ms of the last committed checkpoint, this run's or the one it resumed from. */
  lastCheckpointMs: number | undefined;
  /** Epoch ms of the last checkpoint that found nothing new to commit (the committed state was current then). */
  currentMs: number | undefined;
  /** When the pipeline started: the checkpoint age counts from here until one is committed. */
  startedMs = Date.now();
  readonly edges = new Map<string, EdgeCounters>();

  constructor(name: string) {
    this.name = name;
  }
}

export class EdgeCounters implements EdgeTelemetry {
  readonly labels: { pipeline: string; from: string; to: string };
  sent = 0;
  done = 0;

  constructor(labels: { pipeline: string; from: string; to: string }) {
    this.labels = labels;
  }
}

type PromClient = typeof import('prom-client');
/** Makes one metric (or set of metrics) on the registry once it exists. */
type Declaration = (prom: PromClient, registry: Registry) => void;

let promClient: PromClient | undefined;
/** prom-client, a CommonJS package: required synchronously, once. */
function requirePromClient(): PromClient {
  promClient ??= createRequire(import.meta.url)('prom-client') as PromClient;
  return promClient;
}

export class MetricsRegistry {
  readonly #stages = new Map<string, StageCounters>();
  readonly #pipelines = new Map<string, PipelineCounters>();
  readonly #operatorMetrics: OperatorMetricsFactory;
  readonly #declarations: Declaration[] = [];
  /** Names of the metrics declared so far, taken for operators. */
  readonly #names = new Set<string>();
  #registry: Registry | undefined;

  /** The prom-client registry, made (and every metric declared so far registered on it) on first use. */
  get registry(): Registry {
    if (this.#registry === undefined) {
      const prom = requirePromClient();
      const registry = new prom.Registry();
      this.#registry = registry;
      for (const declare of this.#declarations) declare(prom, registry);
    }
    return this.#registry;
  }

  /** Registers a metric now if the registry exists, else when it is made. */
  #declare(name: string | undefined, declare: Declaration): void {
    if (name !== undefined) this.#names.add(name);
    this.#declarations.push(declare);
    if (this.#registry !== undefined) declare(requirePromClient(), this.#registry);
  }

  constructor() {
    const stages = this.#stages;
    /** A counter of every stage, or of the stages `read` answers for. */
    const scalar = (name: string, help: string, read: (stage: StageCounters) => number | undefined): void => {
      this.#declare(name, (prom, registry) => {
        new prom.Counter({
          name,
          help,
          labelNames: STAGE_LABELS,
          registers: [registry],
          collect() {
            this.reset();
            for (const stage of stages.values()) {
              const value = read(stage);
              if (value !== undefined) this.inc(stage.labels, value);
            }
          },
        });
      });
    };
    const keyed = (name: string, help: string, label: string, read: (stage: StageCounters) => Map<string, number>) => {
      this.#declare(name, (prom, registry) => {
        new prom.Counter({
          name,
          help,
          labelNames: [...STAGE_LABELS, label],
          registers: [registry],
          collect() {
            this.reset();
            for (const stage of stages.values()) {
              for (const [key, value] of read(stage)) this.inc({ ...stage.labels, [label]: key }, value);
            }
          },
        });
      });
    };
    scalar('etl_component_received_records_total', 'Records received by the stage.', (s) => s.receivedRecords);
    scalar('etl_component_received_bytes_total', 'Bytes received by the stage.', (s) => s.receivedBytes);
    keyed(
      'etl_component_sent_records_total',
      'Records sent by the stage, by output port.',
      'port',
      (s) => s.sentRecords,
    );
    keyed('etl_component_errors_total', 'Stage failures, by lifecycle phase.', 'phase', (s) => s.errors);
    keyed(
      'etl_component_discarded_records_total',
      'Records the stage dropped or dead-lettered, by reason.',
      'reason',
      (s) => s.discardedRecords,
    );
    scalar('etl_component_batches_total', 'Batches the stage processed.', (s) => s.batches);
    scalar(
      'etl_component_dead_lettered_records_total',
      'Records the stage sent to dead letters.',
      (s) => s.deadLettered,
    );
    const histogram = (name: string, help: string, read: (stage: StageCounters) => Buckets | undefined) =>
      this.#declare(name, (_prom, registry) => {
        new HistogramFamily(registry, name, help, function* () {
          for (const stage of stages.values()) {
            const buckets = read(stage);
            if (buckets !== undefined) yield [stage.labels, buckets] as const;
          }
        });
      });
    histogram(
      'etl_component_batch_duration_seconds',
      'Time the stage took to process one batch (transforms and sinks).',
      (s) => (s.labels.component_kind === 'source' ? undefined : s.batchDuration),
    );
    const sourceScalar = (name: string, help: string, read: (source: SourceCounters) => number) =>
      scalar(name, help, (s) => (s.source ? read(s.source) : undefined));
    sourceScalar('etl_source_read_bytes_total', 'Bytes the source read.', (s) => s.readBytes);
    sourceScalar('etl_source_read_lines_total', 'Lines the source read (sources of lines).', (s) => s.readLines);
    histogram(
      'etl_source_credit_wait_seconds',
      'Time a source batch waited for a permit to be sent (backpressure).',
      (s) => s.source?.creditWait,
    );
    const sourceGauge = (name: string, help: string, read: (state: SourceState) => number | undefined) =>
      this.#declare(name, (prom, registry) => {
        new prom.Gauge({
          name,
          help,
          labelNames: STAGE_LABELS,
          registers: [registry],
          collect() {
            this.reset();
            for (const stage of stages.values()) {
              const state = stage.source?.state?.();
              const value = state === undefined ? undefined : read(state);
              if (value !== undefined) this.set(stage.labels, value);
            }
          },
        });
      });
    sourceGauge('etl_source_lag_bytes', 'Bytes behind the end of the input, summed over its files.', (s) => s.lagBytes);
    sourceGauge('etl_source_open_files', 'Files the source holds open.', (s) => s.openFiles);
    const sinkScalar = (name: string, help: string, read: (sink: SinkCounters) => number) =>
      scalar(name, help, (s) => (s.sink ? read(s.sink) : undefined));
    histogram('etl_sink_write_duration_seconds', "One call of the sink's write.", (s) => s.sink?.writeDuration);
    histogram(
      'etl_sink_commit_duration_seconds',
      "The sink's part of one checkpoint: making its writes durable and committing them.",
      (s) => s.sink?.commitDuration,
    );
    sinkScalar('etl_sink_retries_total', 'Sink writes tried again.', (s) => s.retries);
    sinkScalar('etl_sink_reconnects_total', 'Connections the sink made again after losing one.', (s) => s.reconnects);
    sinkScalar(
      'etl_sink_committed_records_total',
      'Records made durable by committed checkpoints.',
      (s) => s.committedRecords,
    );
    this.#declare('etl_sink_circuit_state', (prom, registry) => {
      new prom.Gauge({
        name: 'etl_sink_circuit_state',
        help: 'Circuit breaker of the sink: 0 closed, 1 half-open, 2 open (the server is given up on for now).',
        labelNames: STAGE_LABELS,
        registers: [registry],
        collect() {
          this.reset();
          for (const stage of stages.values()) {
            if (stage.sink) this.set(stage.labels, CIRCUIT_VALUES[stage.sink.circuit]);
          }
        },
      });
    });
    histogram(
      'etl_freshness_event_seconds',
      'Commit time minus event time of each committed record (sampled once per batch).',
      (s) => s.sink?.freshnessEvent,
    );
    histogram(
      'etl_freshness_read_seconds',
      'Commit time minus the time its source read each committed record.',
      (s) => s.sink?.freshnessRead,
    );
    this.#pipelineMetrics();
    // The process_* and nodejs_* names are reserved for operators by prefix.
    this.#declare(undefined, (prom, register) => prom.collectDefaultMetrics({ register }));
    this.#operatorMetrics = new OperatorMetricsFactory(
      (name, declare) => this.#declare(name, declare),
      (name) => this.#names.has(name),
      (pipeline, stageId) => this.#stages.get(stageKey(pipeline, stageId)),
    );
  }

  #pipelineMetrics(): void {
    const pipelines = this.#pipelines;
    const gauge = (name: string, help: string, read: (p: PipelineCounters) => number | undefined) =>
      this.#declare(name, (prom, registry) => {
        new prom.Gauge({
          name,
          help,
          labelNames: ['pipeline'],
          registers: [registry],
          collect() {
            this.reset();
            for (const p of pipelines.values()) {
              const value = read(p);
              if (value !== undefined) this.set({ pipeline: p.name }, value);
            }
          },
        });
      });
    gauge('etl_pipeline_up', '1 while the pipeline runs.', (p) => p.up);
    gauge('etl_checkpoint_last_success_timestamp_seconds', 'Unix time of the last committed checkpoint.', (p) =>
      p.lastCheckpointMs === undefined ? undefined : p.lastCheckpointMs / 1000,
    );
    gauge(
      'etl_checkpoint_age_seconds',
      'Seconds since the committed checkpoint state was last current (a commit, or a due checkpoint with nothing new).',
      (p) =>
        p.up === 1
          ? (Date.now() - Math.max(p.lastCheckpointMs ?? p.startedMs, p.currentMs ?? Number.NEGATIVE_INFINITY)) / 1000
          : undefined,
    );
    this.#declare('etl_checkpoint_duration_seconds', (_prom, registry) => {
      new HistogramFamily(
        registry,
        'etl_checkpoint_duration_seconds',
        'One whole checkpoint, cut to commit.',
        function* () {
          for (const p of pipelines.values()) yield [{ pipeline: p.name }, p.checkpointDuration] as const;
        },
      );
    });
    this.#declare('etl_edge_inflight_batches', (prom, registry) => {
      new prom.Gauge({
        name: 'etl_edge_inflight_batches',
        help: 'Batches sent on the edge that the stage it leads to has not processed yet (backlog).',
        labelNames: ['pipeline', 'from', 'to'],
        registers: [registry],
        collect() {
          this.reset();
          for (const p of pipelines.values()) {
            for (const edge of p.edges.values()) this.set(edge.labels, Math.max(0, edge.sent - edge.done));
          }
        },
      });
    });
  }

  /** The figures of one pipeline; the same object for the same name. */
  pipeline(name: string): PipelineCounters {
    let counters = this.#pipelines.get(name);
    if (counters === undefined) {
      counters = new PipelineCounters(name);
      this.#pipelines.set(name, counters);
    }
    return counters;
  }

  /** The counters of one stage; the same object for the same pipeline and stage id. */
  stage(pipeline: string, stageId: string, kind: string, type: string): StageCounters {
    const key = stageKey(pipeline, stageId);
    let counters = this.#stages.get(key);
    if (counters === undefined) {
      counters = new StageCounters({ pipeline, component_id: stageId, component_kind: kind, component_type: type });
      this.#stages.set(key, counters);
    }
    return counters;
  }

  operatorMetrics(pipeline: string, stageId: string): OperatorMetrics {
    return this.#operatorMetrics.forStage(pipeline, stageId);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}

function stageKey(pipeline: string, stageId: string): string {
  return `${pipeline}\u0000${stageId}`;
}

const METRIC_NAME = /^[a-z_][a-z0-9_]*$/;
const LABEL_NAME = /^[a-z_][a-z0-9_]*$/;
/** Names the runtime fills for every stage and pipeline (its `etl_source_*`, `etl_sink_*` are taken by name). */
const RESERVED_PREFIXES = [
  'etl_component_',
  'etl_edge_',
  'etl_checkpoint_',
  'etl_freshness_',
  'etl_pipeline_',
  'process_',
  'nodejs_',
];
const OWN_LABELS = ['pipeline', 'component_id', 'component_kind', 'component_type'];

/** One series of an operator metric: its labels and its value, copied into prom-client at scrape. */
interface Series {
  readonly labels: Record<string, string>;
  value: number;
}

interface OperatorMetric {
  readonly kind: 'counter' | 'gauge';
  readonly labelNames: string;
  /** By the label values in `labelNames` order. */
  readonly series: Map<string, Series>;
}

/**
 * Metrics operators create for themselves. Stages of the same type share one metric per name; each gets
 * its own series through the stage labels (`pipeline`, `component_id`, `component_kind`, `component_type`). Misuse (bad name, a name reused with
 * another type or labels, a counter decreased) throws when the instrument is created or used, never silently.
 */
class OperatorMetricsFactory {
  readonly #declare: (name: string, declare: Declaration) => void;
  readonly #taken: (name: string) => boolean;
  readonly #metrics = new Map<string, OperatorMetric>();
  readonly #stage: (pipeline: string, stageId: string) => StageCounters | undefined;

  constructor(
    declare: (name: string, declare: Declaration) => void,
    taken: (name: string) => boolean,
    stage: (pipeline: string, stageId: string) => StageCounters | undefined,
  ) {
    this.#declare = declare;
    this.#taken = taken;
    this.#stage = stage;
  }

  forStage(pipeline: string, stageId: string): OperatorMetrics {
    // The runtime registers the stage before it creates the operator; kind and type are empty for one it did not.
    const own = this.#stage(pipeline, stageId)?.labels ?? {
      pipeline,
      component_id: stageId,
      component_kind: '',
      component_type: '',
    };
    return {
      counter: (name, help, labels = {}) => {
        const series = this.#series(this.#metric('counter', name, help, labels), { ...labels, ...own });
        return {
          inc(value = 1) {
            if (!Number.isFinite(value)) throw new TypeError(`metric ${name}: ${value} is not a valid number`);
            if (value < 0) throw new RangeError(`metric ${name}: a counter cannot decrease (inc(${value}))`);
            series().value += value;
          },
        };
      },
      gauge: (name, help, labels = {}) => {
        const series = this.#series(this.#metric('gauge', name, help, labels), { ...labels, ...own });
        return {
          set(value) {
            if (typeof value !== 'number') throw new TypeError(`metric ${name}: ${String(value)} is not a number`);
            series().value = value;
          },
        };
      },
    };
  }

  /** The series of these labels, made at its first value (as prom-client shows none before). */
  #series(metric: OperatorMetric, labels: Record<string, string>): () => Series {
    const key = JSON.stringify(metric.labelNames.split(',').map((name) => labels[name]));
    return () => {
      let series = metric.series.get(key);
      if (series === undefined) {
        series = { labels, value: 0 };
        metric.series.set(key, series);
      }
      return series;
    };
  }

  #metric(kind: 'counter' | 'gauge', name: string, help: string, labels: Record<string, string>): OperatorMetric {
    validateName(name);
    if (help.trim() === '') throw new TypeError(`metric ${name}: help text is empty`);
    const extra = Object.keys(labels).sort();
    for (const label of extra) validateLabel(name, label);
    const labelNames = [...OWN_LABELS, ...extra];
    const signature = labelNames.join(',');
    const existing = this.#metrics.get(name);
    if (existing !== undefined) {
      if (existing.kind !== kind || existing.labelNames !== signature) {
        throw new TypeError(
          `metric ${name} already exists as a ${existing.kind} with labels (${existing.labelNames}); ` +
            `cannot redeclare it as a ${kind} with labels (${signature})`,
        );
      }
      return existing;
    }
    if (this.#taken(name)) throw new TypeError(`metric ${name} is already taken`);
    const metric: OperatorMetric = { kind, labelNames: signature, series: new Map() };
    this.#metrics.set(name, metric);
    const series = metric.series;
    this.#declare(name, (prom, registry) => {
      const config = { name, help, labelNames, registers: [registry] };
      if (kind === 'counter') {
        new prom.Counter({
          ...config,
          collect() {
            this.reset();
            for (const { labels, value } of series.values()) this.inc(labels, value);
          },
        });
      } else {
        new prom.Gauge({
          ...config,
          collect() {
            this.reset();
            for (const { labels, value } of series.values()) this.set(labels, value);
          },
        });
      }
    });
    return metric;
  }
}

function validateName(name: string): void {
  if (!METRIC_NAME.test(name)) {
    throw new TypeError(`metric name ${JSON.stringify(name)} must be snake_case: lowercase letters, digits, _`);
  }
  const reserved = RESERVED_PREFIXES.find((prefix) => name.startsWith(prefix));
  if (reserved !== undefined) throw new TypeError(`metric name ${name}: the prefix ${reserved} is reserved`);
}

function validateLabel(metric: string, label: string): void {
  if (!LABEL_NAME.test(label) || label.startsWith('__')) {
    throw new TypeError(`metric ${metric}: label name ${JSON.stringify(label)} must be snake_case`);
  }
  if (OWN_LABELS.includes(label)) throw new TypeError(`metric ${metric}: label ${label} is set by the runtime`);
}
