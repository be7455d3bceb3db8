/**
 * Prometheus metrics on a registry of our own. The runtime counts every batch of every stage, so stage
 * counters are plain numbers on a per-stage object (no label hashing on the hot path); they are copied
 * into the prom-client counters only when the registry is scraped.
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { OperatorMetrics } from '../operator.ts';
import type { StageTelemetry } from './types.ts';

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

  constructor(labels: StageLabels) {
    this.labels = labels;
  }
}

export class MetricsRegistry {
  readonly registry = new Registry();
  readonly #stages = new Map<string, StageCounters>();
  readonly #operatorMetrics: OperatorMetricsFactory;

  constructor() {
    const stages = this.#stages;
    const scalar = (name: string, help: string, read: (stage: StageCounters) => number): void => {
      new Counter({
        name,
        help,
        labelNames: STAGE_LABELS,
        registers: [this.registry],
        collect() {
          this.reset();
          for (const stage of stages.values()) this.inc(stage.labels, read(stage));
        },
      });
    };
    const keyed = (name: string, help: string, label: string, read: (stage: StageCounters) => Map<string, number>) => {
      new Counter({
        name,
        help,
        labelNames: [...STAGE_LABELS, label],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const stage of stages.values()) {
            for (const [key, value] of read(stage)) this.inc({ ...stage.labels, [label]: key }, value);
          }
        },
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
    collectDefaultMetrics({ register: this.registry });
    this.#operatorMetrics = new OperatorMetricsFactory(this.registry);
  }

  /** The counters of one stage; the same object for the same pipeline and stage id. */
  stage(pipeline: string, stageId: string, kind: string, type: string): StageCounters {
    const key = `${pipeline}\u0000${stageId}`;
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

const METRIC_NAME = /^[a-z_][a-z0-9_]*$/;
const LABEL_NAME = /^[a-z_][a-z0-9_]*$/;
const RESERVED_PREFIXES = ['etl_component_', 'process_', 'nodejs_'];
const OWN_LABELS = ['pipeline', 'component_id'];

interface OperatorMetric {
  readonly kind: 'counter' | 'gauge';
  readonly labelNames: string;
  readonly metric: Counter<string> | Gauge<string>;
}

/**
 * Metrics operators create for themselves. Stages of the same type share one metric per name; each gets
 * its own series through the `pipeline` and `component_id` labels. Misuse (bad name, a name reused with
 * another type or labels) throws when the instrument is created, i.e. in `create`/`open`, never per record.
 */
class OperatorMetricsFactory {
  readonly #registry: Registry;
  readonly #metrics = new Map<string, OperatorMetric>();

  constructor(registry: Registry) {
    this.#registry = registry;
  }

  forStage(pipeline: string, stageId: string): OperatorMetrics {
    return {
      counter: (name, help, labels = {}) => {
        const metric = this.#metric('counter', name, help, labels) as Counter<string>;
        return metric.labels({ ...labels, pipeline, component_id: stageId });
      },
      gauge: (name, help, labels = {}) => {
        const metric = this.#metric('gauge', name, help, labels) as Gauge<string>;
        return metric.labels({ ...labels, pipeline, component_id: stageId });
      },
    };
  }

  #metric(kind: 'counter' | 'gauge', name: string, help: string, labels: Record<string, string>) {
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
      return existing.metric;
    }
    if (this.#registry.getSingleMetric(name) !== undefined) throw new TypeError(`metric ${name} is already taken`);
    const config = { name, help, labelNames, registers: [this.#registry] };
    const metric = kind === 'counter' ? new Counter(config) : new Gauge(config);
    this.#metrics.set(name, { kind, labelNames: signature, metric });
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
