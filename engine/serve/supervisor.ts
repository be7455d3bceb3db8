/**
 * The pipelines of the daemon, by name. Every change arrives as YAML text from an owner (a file of the config
 * directory, or the API), goes through the same passes as `etl validate`, and only a valid one reaches the
 * slots: an invalid change leaves the running version running, and is counted in
 * `etl_config_reload_failures_total`.
 */
import { Counter, type Registry } from 'prom-client';
import { parseAllDocuments } from 'yaml';
import { loadPipelinesFromString } from '../config/load.ts';
import type { PipelineSpec } from '../config/types.ts';
import { type Diagnostic, formatDiagnostic, hasErrors } from '../diagnostics.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../operator.ts';
import { redact } from '../redact.ts';
import { fitCheckpoint } from '../state/fit.ts';
import { StateStore } from '../state/store.ts';
import type { Telemetry } from '../telemetry/types.ts';
import { type PipelineSlot as Slot, PipelineSlot, type PipelineStatus, type Version } from './slot.ts';
import { type Change, diffVersions, fingerprint } from './version.ts';

export type PlannedAction = 'create' | 'update' | 'unchanged' | 'refused';

export interface PipelinePlan {
  readonly name: string;
  readonly action: PlannedAction;
  /** What differs from the version applied before (`stages.parsed` changed…). */
  readonly changes: readonly Change[];
  /** Why it was refused. */
  readonly message?: string;
  /** After a real apply: where the pipeline stands. */
  readonly status?: PipelineStatus;
}

export interface ApplyOutcome {
  /** False when the YAML has errors: nothing was changed. */
  readonly valid: boolean;
  readonly diagnostics: readonly Diagnostic[];
  readonly pipelines: readonly PipelinePlan[];
  /** Pipelines of this owner that the text no longer holds: stopped and removed (only for a file owner). */
  readonly removed: readonly string[];
}

export interface SupervisorOptions {
  readonly telemetry: Telemetry;
  /** The daemon's registry, for its own metrics. */
  readonly registry: Registry;
  readonly logger: Logger;
  /** A pipeline's logger, for one of its stages when `stage` is set. */
  readonly pipelineLogger: (spec: PipelineSpec, stage: string | undefined) => Logger;
  readonly restartDelayMs?: number;
}

export class Supervisor {
  private readonly slots = new Map<string, Slot>();
  private readonly options: SupervisorOptions;
  private readonly reloadFailures: Counter<'pipeline'>;
  private closing = false;

  constructor(options: SupervisorOptions) {
    this.options = options;
    this.reloadFailures = new Counter({
      name: 'etl_config_reload_failures_total',
      help: 'Changes to a pipeline that were refused (invalid, or failing to start): the running version kept running',
      labelNames: ['pipeline'],
      registers: [options.registry],
    });
  }

  list(): Slot[] {
    return [...this.slots.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  get(name: string): Slot | undefined {
    return this.slots.get(name);
  }

  /** Names of the pipelines `owner` applied. */
  ownedBy(owner: string): string[] {
    return this.list()
      .filter((slot) => slot.owner === owner)
      .map((slot) => slot.name);
  }

  /**
   * Validates `text` (named `file` in diagnostics) and, unless `dryRun`, makes its pipelines run: new ones
   * start, changed ones reload, unchanged ones are left alone. With `prune`, pipelines `owner` applied before
   * that the text no longer holds are stopped and removed (a file of the config directory).
   */
  async apply(
    text: string,
    file: string,
    owner: string,
    options: { dryRun?: boolean; prune?: boolean } = {},
  ): Promise<ApplyOutcome> {
    const { pipelines, diagnostics } = await loadPipelinesFromString(text, file);
    if (hasErrors(diagnostics) || this.closing) {
      const refused = this.closing ? [closingDiagnostic(file)] : [];
      if (!options.dryRun) this.refuse(owner, file, [...diagnostics, ...refused]);
      return { valid: false, diagnostics: [...diagnostics, ...refused], pipelines: [], removed: [] };
    }
    const plans: PipelinePlan[] = [];
    const accepted: Version[] = [];
    for (const spec of pipelines) {
      const version: Version = {
        spec,
        yaml: documentText(text, spec, pipelines.length),
        fingerprint: fingerprint(spec),
        owner,
        appliedAt: new Date().toISOString(),
      };
      const plan = await this.plan(version);
      plans.push(plan);
      if (plan.action === 'refused') {
        if (!options.dryRun) {
          this.reloadFailures.inc({ pipeline: spec.name });
          this.options.logger.error(`pipeline ${spec.name}: change refused: ${plan.message}`, { file });
        }
      } else if (plan.action !== 'unchanged') {
        accepted.push(version);
      }
    }
    const names = new Set(pipelines.map((p) => p.name));
    const removed = options.prune ? this.ownedBy(owner).filter((name) => !names.has(name)) : [];
    if (options.dryRun) return { valid: true, diagnostics, pipelines: plans, removed };

    await Promise.all([...accepted.map((version) => this.run(version)), ...removed.map((name) => this.remove(name))]);
    const settled = plans.map((plan) => this.outcome(plan, accepted));
    for (const plan of settled) {
      if (plan.action !== 'create' && plan.action !== 'update') continue;
      const what = plan.action === 'create' ? 'started' : 'reloaded';
      this.options.logger.info(`pipeline ${plan.name} ${what} from ${file}`, { status: plan.status });
    }
    return { valid: true, diagnostics, pipelines: settled, removed };
  }

  /** Stops a pipeline (drained, checkpointed) and forgets it. */
  async remove(name: string): Promise<boolean> {
    const slot = this.slots.get(name);
    if (!slot) return false;
    await slot.delete();
    if (!slot.desired) this.slots.delete(name);
    return true;
  }

  /**
   * Graceful shutdown: every pipeline stops its sources, drains, flushes and writes its checkpoint. Once
   * `deadline` aborts, runs still draining are aborted (their last committed checkpoint stays).
   */
  async shutdown(deadline: AbortSignal): Promise<void> {
    this.closing = true;
    const onDeadline = () => {
      for (const slot of this.slots.values()) slot.abortNow();
    };
    deadline.addEventListener('abort', onDeadline, { once: true });
    try {
      await Promise.all(this.list().map((slot) => slot.stop()));
    } finally {
      deadline.removeEventListener('abort', onDeadline);
    }
  }

  private async plan(version: Version): Promise<PipelinePlan> {
    const name = version.spec.name;
    const slot = this.slots.get(name);
    const before = slot?.desired;
    if (slot?.owner !== undefined && slot.owner !== version.owner) {
      return {
        name,
        action: 'refused',
        changes: [],
        message: `pipeline ${name} is managed by ${slot.owner}; change it there`,
      };
    }
    if (before && before.fingerprint === version.fingerprint) return { name, action: 'unchanged', changes: [] };
    const misfit = await checkpointMisfit(version.spec);
    const changes = diffVersions(before?.spec, version.spec);
    if (misfit) return { name, action: 'refused', changes, message: misfit };
    return { name, action: before ? 'update' : 'create', changes };
  }

  private run(version: Version): Promise<void> {
    const name = version.spec.name;
    const existing = this.slots.get(name);
    if (existing) return existing.apply(version);
    const slot = new PipelineSlot(name, version, {
      telemetry: this.options.telemetry,
      logger: (spec, stage) => noting(slot, this.options.pipelineLogger(spec, stage), stage, spec.secrets),
      events: {
        reloadFailed: (s, refused, error) => {
          this.reloadFailures.inc({ pipeline: s.name });
          this.options.logger.error(
            `pipeline ${s.name}: the new version failed to start, the previous one runs again: ${redact(errorMessage(error), refused.spec.secrets)}`,
          );
        },
      },
      ...(this.options.restartDelayMs === undefined ? {} : { restartDelayMs: this.options.restartDelayMs }),
    });
    this.slots.set(name, slot);
    return slot.apply(version);
  }

  /** A plan as it turned out: a version that failed to start while an older one ran is reported refused. */
  private outcome(plan: PipelinePlan, accepted: readonly Version[]): PipelinePlan {
    const slot = this.slots.get(plan.name);
    const status = slot?.status ?? 'deleted';
    const version = accepted.find((v) => v.spec.name === plan.name);
    if (slot && version && slot.lastRefusal?.fingerprint === version.fingerprint && slot.desired !== version) {
      return { ...plan, action: 'refused', message: slot.lastRefusal.message, status };
    }
    return { ...plan, status };
  }

  /** An invalid text: logged, and counted against the pipelines its owner runs (or the file when none). */
  private refuse(owner: string, file: string, diagnostics: readonly Diagnostic[]): void {
    const names = this.ownedBy(owner);
    for (const name of names.length > 0 ? names : [file]) this.reloadFailures.inc({ pipeline: name });
    const errors = diagnostics.filter((d) => d.severity === 'error');
    this.options.logger.error(
      `${file}: change refused (${errors.length} error${errors.length === 1 ? '' : 's'}); ${
        names.length > 0 ? `${names.join(', ')} keep running the previous version` : 'nothing was started'
      }`,
    );
    for (const d of errors) this.options.logger.error(formatDiagnostic(d));
  }
}

/**
 * Why the pipeline's last checkpoint cannot be resumed by `spec` (a renamed source would read everything
 * again), found before the running version is stopped; undefined when it fits or there is none.
 */
async function checkpointMisfit(spec: PipelineSpec): Promise<string | undefined> {
  try {
    const state = await new StateStore(spec.settings.dataDir, spec.name).load();
    if (state?.committed) fitCheckpoint(state.committed, spec);
    if (state?.pending) fitCheckpoint(state.pending, spec);
    return undefined;
  } catch (error) {
    return redact(errorMessage(error), spec.secrets);
  }
}

/** A pipeline's logger that also keeps its warnings and errors on the slot, for the API. */
function noting(slot: Slot, logger: Logger, stage: string | undefined, secrets: readonly string[]): Logger {
  return {
    debug: (message, fields) => logger.debug(message, fields),
    info: (message, fields) => logger.info(message, fields),
    warn: (message, fields) => {
      slot.note('warn', redact(message, secrets), stage);
      logger.warn(message, fields);
    },
    error: (message, fields) => {
      slot.note('error', redact(message, secrets), stage);
      logger.error(message, fields);
    },
  };
}

/** The text of the document that declares `spec`: the whole text when it holds one pipeline. */
function documentText(text: string, spec: PipelineSpec, count: number): string {
  if (count === 1) return text;
  for (const doc of parseAllDocuments(text)) {
    if (!('getIn' in doc) || doc.getIn(['metadata', 'name']) !== spec.name || !doc.range) continue;
    return text.slice(doc.range[0], doc.range[2]);
  }
  return text;
}

function closingDiagnostic(file: string): Diagnostic {
  return {
    file,
    line: 0,
    column: 0,
    path: '',
    code: 'ETL_CFG_INVALID',
    severity: 'error',
    message: 'the daemon is shutting down: no change is taken',
  };
}
