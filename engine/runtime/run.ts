/**
 * Compiles a validated pipeline into an RxJS graph and runs it.
 *
 * - Every stage's output is a connectable stream of port envelopes; a consumer filters the port it
 *   reads. Downstream stages are wired and connected first, sources last, so no batch is missed.
 * - Backpressure is credit: a source sends a batch only with a permit of its CreditGate, and the
 *   permit returns when every consumer downstream is done with the batch (Delivery reaches zero).
 * - Checkpoints are consistent cuts: pause credit, wait until nothing is in flight, then two-phase
 *   commit source positions and sink states (see engine/state/store.ts).
 * - Shutdown: sources stop, in-flight batches drain, stages flush, sinks flush, final checkpoint.
 */
// Each from its own module: the package's index loads all of RxJS (220 modules), a good part of `etl apply`'s
// start, for the few pieces the runtime uses. `rxjs/internal/*` is in the package's exports; the classes are
// the very ones the index re-exports, so code importing 'rxjs' elsewhere meets the same Observable.
import { connectable } from 'rxjs/internal/observable/connectable';
import { merge } from 'rxjs/internal/observable/merge';
import { Observable } from 'rxjs/internal/Observable';
import { filter } from 'rxjs/internal/operators/filter';
import { map } from 'rxjs/internal/operators/map';
import { Subject } from 'rxjs/internal/Subject';
import type { Connectable } from 'rxjs/internal/types';
import type { PipelineSpec, StageSpec } from '../config/types.ts';
import { join } from 'node:path';
import { EtlError, errorMessage, isRetriable } from '../errors.ts';
import {
  buildGraph,
  consumersByPort,
  DEAD_LETTER_PORT,
  DEFAULT_PORT,
  downstreamSinks,
  type Graph,
  outputPorts,
  upstreamSources,
} from '../graph/graph.ts';
import { taps } from '../telemetry/tap.ts';
import { LockFile } from '../lock.ts';
import type {
  BatchOptions,
  Logger,
  CommittedCheckpoint,
  OpenResource,
  OperatorContext,
  PartitionStore,
  PortRecords,
  Sink,
  SinkDefinition,
  Source,
  SourceDefinition,
  SourceOutput,
  StageReport,
  Transform,
  TransformDefinition,
} from '../operator.ts';
import { type DeadLetter, deadLetter, type EtlRecord, ORIGIN, type Origin } from '../record.ts';
import { retry } from '../retry.ts';
import { changesSince, fitCheckpoint, stageFingerprints, stageTypes } from '../state/fit.ts';
import { KeyedStateBackend } from '../state/keyed.ts';
import { decideResume } from '../state/resume.ts';
import { type CheckpointRecord, type PipelineState, StateStore } from '../state/store.ts';
import type {
  PipelineTelemetry,
  RemoteTraceContext,
  SinkStats,
  StageTelemetry,
  Telemetry,
} from '../telemetry/types.ts';
import { Acknowledgements } from './acks.ts';
import { Checkpoints } from './checkpoints.ts';
import { Delivery } from './delivery.ts';
import { PendingCommits } from './freshness.ts';
import type { Envelope, PortEnvelope } from './envelope.ts';
import { operatorContext } from './context.ts';
import { CreditGate } from './gate.ts';
import { Watermark } from './watermark.ts';
import { appendAudit, auditRecord } from './audit.ts';
import { noopTelemetry, silentLogger } from './noop.ts';
import { stageOperator } from './stage-operator.ts';
import { emptyStats, notingWarnings, type RunStats } from './stats.ts';
import { releaseMemoryWhenIdle } from './idle-memory.ts';
import { CommitLinks, TraceLinks } from './trace-links.ts';
import { copyingEdges, copyRecords, edgeKey } from './ownership.ts';
import { type ChainPlan, planChains } from './workers/chains.ts';
import type { WorkerChain } from './workers/pool.ts';

/** How often a run checks whether records stopped arriving, to give back the memory a burst grew. */
const IDLE_MEMORY_CHECK_MS = 5000;

export interface RunOptions {
  telemetry?: Telemetry;
  /** Logger for a stage (or the pipeline itself when `stage` is undefined). */
  logger?: (stage: string | undefined) => Logger;
  /** Aborting asks for a graceful stop: sources stop, everything in flight drains, final checkpoint. */
  stop?: AbortSignal;
  /** Aborting stops now: no drain, no checkpoint (the last committed one stays). */
  abort?: AbortSignal;
  /** Called on every change worth showing (throttle on the caller's side). */
  onStats?: (stats: RunStats) => void;
  /** Working directory against which relative `data_dir` resolves. */
  cwd?: string;
  /** When another process runs this pipeline (holds its state lock): wait for it instead of refusing. */
  waitForLock?: boolean;
  /** Start over: the checkpoint is set aside, every source reads from the start. */
  reset?: boolean;
  /** A checkpoint made before stages were renamed or removed: old id → new id, and ids whose state to drop. */
  renames?: Readonly<Record<string, string>>;
  forget?: readonly string[];
  /** Called once every stage is open and the sources are reading: the run is up (a daemon's readiness). */
  onRunning?: () => void;
  /**
   * Modules (file URLs) exporting operator definitions that are not in the registry (an embedding application's
   * own): stages on worker threads (`workers`) are created from the registry or from these.
   */
  operatorModules?: readonly string[];
}

export interface RunResult {
  readonly ok: boolean;
  readonly error?: Error;
  /** True when the run ended because `stop` was aborted. */
  readonly stopped: boolean;
  readonly stats: RunStats;
}

interface StageInstance {
  readonly spec: StageSpec;
  readonly telemetry: StageTelemetry;
  readonly logger: Logger;
  readonly source?: Source;
  readonly transform?: Transform;
  readonly sink?: Sink;
  /** A sink's writes waiting for the checkpoint that commits them (committed records, freshness). */
  readonly pending?: PendingCommits;
  output$?: Connectable<PortEnvelope>;
}

/**
 * Records a stage emits when it flushes belong to no source batch, so nothing waits on their delivery
 * (the final checkpoint runs after every stage has completed); downstream releases must never reach zero.
 */
const detachedDelivery = (): Delivery => {
  const delivery = new Delivery(() => {});
  delivery.retain(1 << 30);
  return delivery;
};

/** Longest a source runs without letting the event loop serve anything else. */
const YIELD_EVERY_MS = 10;

export async function runPipeline(spec: PipelineSpec, options: RunOptions = {}): Promise<RunResult> {
  const startedAt = new Date();
  const result = await new PipelineRun(spec, options).run();
  const auditLog = spec.settings.auditLog;
  if (auditLog === undefined) return result;
  try {
    await appendAudit(auditLog, auditRecord(spec, startedAt, result), spec.secrets);
    return result;
  } catch (error) {
    // A compliance record that could not be kept fails the run (exit 1), though its data is committed.
    const failure = new EtlError(
      'ETL_AUDIT_FAILED',
      `could not append to the audit log ${auditLog}: ${errorMessage(error)}`,
    );
    options.logger?.(undefined).error(failure.message);
    return { ...result, ok: false, error: result.error ?? failure };
  }
}

class PipelineRun {
  private readonly spec: PipelineSpec;
  private readonly options: RunOptions;
  private readonly telemetry: Telemetry;
  private readonly pipelineTelemetry: PipelineTelemetry;
  private readonly log: Logger;
  private readonly graph: Graph;
  private readonly consumers: Map<string, string[]>;
  private readonly stats: RunStats;
  private readonly store: StateStore;
  private readonly lock: LockFile;
  private readonly stages = new Map<string, StageInstance>();
  private readonly gates = new Map<string, CreditGate>();
  private readonly positions = new Map<string, unknown>();
  private readonly stopSources = new AbortController();
  private readonly hardAbort = new AbortController();
  private readonly startedAt = Date.now();
  private readonly sourceProgress = new Map<string, number>();
  private failure: Error | undefined;
  /** A graceful stop was asked for (as opposed to finite inputs ending). */
  private stopRequested = false;
  private checkpoints: Checkpoints | undefined;
  /** Sinks whose writes wait until they committed the last cut (they cannot take `cut`), by sink id. */
  private readonly holds = new Map<string, Promise<void>>();
  private readonly acks = new Acknowledgements();
  private readonly keyed: KeyedStateBackend;
  /** Event-time watermarks of the transforms that take ticks, by stage id. */
  private readonly watermarks = new Map<string, Watermark>();
  /** Shared resources (`spec.resources`), open for the whole run, by name. */
  private readonly resources = new Map<string, OpenResource<unknown>>();
  /**
   * Where late dead letters (found by sinks at a checkpoint's phase one) leave each sink whose dead_letter
   * port is read; what they send is drained at checkpoints like any batch.
   */
  private readonly lateOutputs = new Map<string, Subject<PortEnvelope>>();
  private readonly lateGate = new CreditGate(1 << 20);
  /** Late dead letters of a checkpoint taken once the graph was done: written after it (see `deliverLeftovers`). */
  private leftovers: Array<{ sinkId: string; records: EtlRecord[] }> = [];
  /** Credit of each ticking transform's ticks: one in flight at a time, drained at checkpoints. */
  private readonly tickGates = new Map<string, CreditGate>();
  /** The id of this run's first snapshot, until the checkpoints exist to tell. */
  private firstSnapshotId = 1;
  private warnedUnread = new Set<string>();
  private reportsCollected = false;
  /** With tracing on: the sampled batches each sink wrote, for the commit spans of checkpoints. */
  private readonly commitLinks: CommitLinks | undefined;
  /** With tracing on: the sampled batches each transform received since its last tick or flush output. */
  private readonly fanIn = new Map<string, TraceLinks>();
  /** Stateless stages on worker threads (`workers`), by stage id, and the workers of each chain. */
  private readonly chains: Map<string, ChainPlan>;
  private readonly workerChains = new Map<ChainPlan, WorkerChain>();
  /** Edges into stages that change records in place whose records must be handed over as copies (ownership.ts). */
  private readonly copying: ReadonlySet<string>;

  constructor(spec: PipelineSpec, options: RunOptions) {
    this.spec = spec;
    this.options = options;
    this.telemetry = options.telemetry ?? noopTelemetry;
    this.pipelineTelemetry = this.telemetry.pipeline(spec.name);
    this.commitLinks = this.telemetry.tracing ? new CommitLinks() : undefined;
    this.stats = emptyStats(spec);
    this.log = notingWarnings(options.logger?.(undefined) ?? silentLogger, undefined, this.stats);
    this.graph = buildGraph(spec.stages);
    if (!this.graph.order) {
      throw new EtlError('ETL_GRAPH_CYCLE', `pipeline ${spec.name} has a cycle: ${this.graph.cycle?.join(' -> ')}`);
    }
    this.consumers = consumersByPort(this.graph);
    this.chains = planChains(spec, this.consumers);
    this.copying = copyingEdges(this.graph, this.consumers, (id) => this.chains.has(id));
    this.store = new StateStore(spec.settings.dataDir, spec.name);
    this.keyed = new KeyedStateBackend(spec.settings.dataDir, spec.name);
    // One run per pipeline at a time: two would interleave their sinks' writes and their checkpoints.
    this.lock = new LockFile(
      join(spec.settings.dataDir, 'state', `${spec.name}.lock`),
      `etl apply of pipeline ${spec.name}`,
      'one run of a pipeline at a time; wait for it to finish or stop it, or pass --wait to start once it is done',
    );
  }

  async run(): Promise<RunResult> {
    const onStop = () => {
      this.stopRequested = true;
      this.stopSources.abort();
    };
    const onAbort = () => this.fail(new EtlError('ETL_RUN_ABORTED', 'run aborted'));
    this.options.stop?.addEventListener('abort', onStop, { once: true });
    this.options.abort?.addEventListener('abort', onAbort, { once: true });
    let locked = false;
    const untap = taps.register(
      this.spec.name,
      new Map(this.spec.stages.map((stage) => [stage.id, Object.keys(outputPorts(stage))])),
    );
    try {
      await this.lock.acquire({
        wait: this.options.waitForLock === true,
        signal: this.stopSources.signal,
        onWait: (holder) =>
          this.log.warn(`waiting for ${holder.what} (pid ${holder.pid} on ${holder.host}) to release the pipeline`),
      });
      locked = true;
      this.pipelineTelemetry.up(true);
      const { state, lastId: stateLastId } = await this.loadState();
      this.firstSnapshotId = stateLastId + 1;
      await this.openResources();
      await this.instantiate('downstream');
      const { resumeFrom, lastId } = await this.open(state, stateLastId);
      this.firstSnapshotId = lastId + 1;
      await this.instantiate('sources', resumeFrom);
      const checkpoints = this.createCheckpoints(resumeFrom, lastId + 1);
      checkpoints.onCut((snapshot) => this.acks.cut(snapshot.id));
      const commitLinks = this.commitLinks;
      if (commitLinks) {
        checkpoints.onCut((snapshot) => commitLinks.cut(snapshot.id, Date.now()));
        checkpoints.onCommitted((record) =>
          commitLinks.committed(record.id, (sinkId, id, at, batches) =>
            this.stages.get(sinkId)?.telemetry.commit?.(id, at, batches),
          ),
        );
      }
      checkpoints.onCommitted((record) => this.acks.committed(record.id));
      checkpoints.onCommitted((record, seconds) => this.committedMetrics(record, seconds));
      checkpoints.onCurrent(() => this.pipelineTelemetry.checkpointCurrent(Date.now()));
      checkpoints.onCommitted(() => {
        this.stats.checkpoints = checkpoints.committed;
      });
      checkpoints.onCommitted((record) => this.deliverLate(record));
      checkpoints.onCommitted((record) => {
        this.keyed.committed(record.id).catch((error: unknown) => this.fail(error));
      });
      this.checkpoints = checkpoints;
      const done = this.wire();
      // Dead letters a crash kept from being delivered after the checkpoint that found them.
      if (resumeFrom) this.deliverLate(resumeFrom);
      if (resumeFrom) this.pipelineTelemetry.checkpointCommitted(Date.parse(resumeFrom.time));
      checkpoints.start();
      this.options.onRunning?.();
      // Figures before the first record: a pipeline that waits for its input shows it does.
      this.options.onStats?.(this.stats);
      // A followed input mostly waits: after each burst, the memory it grew is given back once it goes quiet.
      const stopReleasing = releaseMemoryWhenIdle(() => this.stats.recordsIn, IDLE_MEMORY_CHECK_MS);
      await Promise.race([done, aborted(this.hardAbort.signal)]).finally(stopReleasing);
      await checkpoints.stop();
      if (!this.failure) {
        await this.flushSinks();
        await checkpoints.take();
        await this.deliverLeftovers(checkpoints);
        this.collectReports();
      }
    } catch (error) {
      this.fail(error);
    } finally {
      // A failed run still tells what its stages saw.
      if (this.failure) this.collectReports();
      await this.checkpoints?.stop();
      this.acks.end(this.failure ?? new Error('the run ended before the batch was in a committed checkpoint'));
      this.stats.checkpoints = this.checkpoints?.committed ?? 0;
      this.options.stop?.removeEventListener('abort', onStop);
      this.options.abort?.removeEventListener('abort', onAbort);
      await this.closeAll();
      await this.closeResources();
      if (locked) await this.lock.release();
      this.pipelineTelemetry.up(false);
      untap();
      this.stats.elapsedMs = Date.now() - this.startedAt;
      this.options.onStats?.(this.stats);
    }
    const stopped = this.stopRequested && !this.failure;
    return this.failure
      ? { ok: false, error: this.failure, stopped, stats: this.stats }
      : { ok: true, stopped, stats: this.stats };
  }

  // ------------------------------------------------------------------------------ recovery & open

  /** Opens every shared resource before any stage exists: a stage's `create` may take its client. */
  private async openResources(): Promise<void> {
    for (const resource of this.spec.resources) {
      const logger = this.options.logger?.(resource.name) ?? silentLogger;
      const open = await resource.definition.open(resource.options, {
        pipeline: this.spec.name,
        name: resource.name,
        logger,
        baseDir: this.options.cwd ?? process.cwd(),
        signal: this.hardAbort.signal,
      });
      this.resources.set(resource.name, open);
    }
  }

  /** After every stage: the last opened first. */
  private async closeResources(): Promise<void> {
    for (const [name, open] of [...this.resources].reverse()) {
      try {
        await open.close();
      } catch (error) {
        this.log.error(`closing resource ${name} failed: ${errorMessage(error)}`);
      }
    }
    this.resources.clear();
  }

  /**
   * The checkpoint state to resume from, fitted to the pipeline as it is now (renamed or removed stages;
   * refused when it no longer fits), or set aside with `reset`: then only its snapshot ids carry over.
   */
  private async loadState(): Promise<{ state: PipelineState | undefined; lastId: number }> {
    const state = await this.store.load();
    // Snapshot ids keep increasing across a reset: sinks compare theirs with the checkpoint's.
    const lastId = Math.max(state?.committed?.id ?? 0, state?.pending?.id ?? 0);
    if (!state) return { state, lastId };
    if (this.options.reset) {
      const aside = await this.store.setAside();
      this.log.warn('starting over (--reset): every source reads from the start', { previous_state: aside });
      return { state: undefined, lastId };
    }
    const options = { renames: this.options.renames ?? {}, forget: this.options.forget ?? [] };
    const committed = state.committed && fitCheckpoint(state.committed, this.spec, options);
    const pending = state.pending && fitCheckpoint(state.pending, this.spec, options);
    for (const note of committed?.notes ?? pending?.notes ?? []) this.log.warn(note);
    const resumed = committed?.record ?? pending?.record;
    const changes = resumed ? changesSince(resumed, this.spec, options.renames) : [];
    if (resumed && changes.length > 0) {
      // Nothing read before is read again: a stage added in front of the sinks (anonymize, say) never sees it.
      this.log.warn(
        `pipeline ${this.spec.name} changed since checkpoint ${resumed.id}: ${changes.join('; ')}. The change applies ` +
          'to what is read from now on; what the sinks stored before stays as it was made. To make it all again with ' +
          'the change: empty what the sinks hold (a table: etl query "TRUNCATE <table>"), then etl apply --reset',
        { checkpoint: resumed.id },
      );
    }
    if (!committed?.changed && !pending?.changed && changes.length === 0) return { state, lastId };
    // Saved with the pipeline's fingerprints as it is now: the edits are told once, not at every run until the next
    // checkpoint (a run with nothing new to read takes none).
    const current = stageFingerprints(this.spec);
    const refreshed = (record: CheckpointRecord | undefined) =>
      record?.fingerprints ? { ...record, fingerprints: current } : record;
    const fitted = { committed: refreshed(committed?.record), pending: refreshed(pending?.record) };
    await this.store.save(fitted);
    return { state: { ...state, ...fitted }, lastId };
  }

  private context(stage: StageSpec, logger: Logger): OperatorContext {
    return operatorContext(this.spec, stage, {
      telemetry: this.telemetry,
      logger,
      signal: this.hardAbort.signal,
      baseDir: this.options.cwd ?? process.cwd(),
      // Taken even when nothing moved since the last one: the stage has something for it to finish.
      requestCheckpoint: () => {
        this.checkpoints?.markDirty();
        this.checkpoints?.request(0);
      },
      snapshotId: () => this.checkpoints?.nextSnapshotId ?? this.firstSnapshotId,
      keyed: <V>(name: string) => this.keyed.map<V>(stage.id, name),
      watermark: () => this.watermarks.get(stage.id)?.value(),
      ...(this.options.waitForLock === true ? { waitForLocks: this.stopSources.signal } : {}),
      resource: <T>(name: string) => {
        const open = this.resources.get(name);
        if (!open) throw new Error(`stage ${stage.id}: no shared resource named ${name} is open`);
        return open.client as T;
      },
    });
  }

  /**
   * Creates the stages: transforms and sinks first (they are opened before the checkpoint to resume
   * from is known), sources last, with the positions of that checkpoint.
   */
  private async instantiate(which: 'downstream' | 'sources', resumeFrom?: CheckpointRecord): Promise<void> {
    for (const id of this.graph.order as string[]) {
      const spec = this.graph.stages.get(id) as StageSpec;
      const def = spec.definition;
      if ((def.kind === 'source') !== (which === 'sources')) continue;
      const logger = notingWarnings(this.options.logger?.(id) ?? silentLogger, id, this.stats);
      const telemetry = this.telemetry.stage(this.spec.name, id, spec.kind, spec.type);
      const ctx = this.context(spec, logger);
      if (def.kind === 'source') {
        const restoredPosition = resumeFrom?.positions[id];
        if (restoredPosition !== undefined) this.positions.set(id, restoredPosition);
        const partitions = this.partitionStore(id);
        const source = await (def as SourceDefinition).create(spec.options, {
          ...ctx,
          restoredPosition,
          batchMaxRecords: this.spec.settings.batchMaxRecords,
          ...(partitions === undefined ? {} : { partitions }),
        });
        this.stages.set(id, { spec, telemetry, logger, source });
        this.gates.set(id, new CreditGate(this.spec.settings.maxBatchesInFlight));
      } else if (def.kind === 'transform') {
        const transform =
          (await this.workerTransform(spec, ctx)) ?? (await (def as TransformDefinition).create(spec.options, ctx));
        this.stages.set(id, { spec, telemetry, logger, transform });
        if (transform.tick) {
          const settings = this.spec.settings;
          this.watermarks.set(
            id,
            new Watermark({
              field: settings.eventTimeField,
              latenessMs: settings.watermarkLatenessMs,
              idleMs: settings.idleSourceMs,
              // Sources' credit all back: no batch is held up on its way (a sink retrying, a slow stage).
              drained: () => [...this.gates.values()].every((gate) => gate.outstanding === 0),
              expected: upstreamSources(this.graph, id),
            }),
          );
          this.tickGates.set(id, new CreditGate(1));
        }
      } else {
        const sink = await (def as SinkDefinition).create(spec.options, ctx);
        const pending = new PendingCommits(this.spec.settings.eventTimeField, telemetry);
        this.stages.set(id, { spec, telemetry, logger, sink, pending });
      }
    }
  }

  /** For a stage on worker threads, its transform on the main thread: the head or a link of its chain. */
  private async workerTransform(spec: StageSpec, ctx: OperatorContext): Promise<Transform | undefined> {
    const plan = this.chains.get(spec.id);
    if (!plan) return undefined;
    const { ChainHead, ChainLink, WorkerChain } = await import('./workers/pool.ts');
    const index = plan.stages.indexOf(spec.id);
    let chain = this.workerChains.get(plan);
    if (!chain) {
      const stages = plan.stages.map((id) => {
        const stage = this.graph.stages.get(id) as StageSpec;
        return {
          id,
          type: stage.type,
          options: stage.options,
          readPorts: [...this.readPortsOf(id)],
          ...(stage.inputSchema === undefined ? {} : { inputSchema: stage.inputSchema }),
        };
      });
      const init = {
        pipeline: this.spec.name,
        dataDir: ctx.dataDir,
        baseDir: ctx.baseDir,
        operatorModules: this.options.operatorModules ?? [],
        stages,
      };
      chain = new WorkerChain(init, plan.workers);
      this.workerChains.set(plan, chain);
    }
    chain.attach(index, { logger: ctx.logger, metrics: ctx.metrics });
    return index === 0 ? new ChainHead(chain) : new ChainLink(chain, index, spec.id);
  }

  private readPortsOf(id: string): Set<string> {
    const ports = new Set<string>();
    for (const other of this.spec.stages)
      for (const input of other.inputs) if (input.stage === id) ports.add(input.port);
    return ports;
  }

  /**
   * Where source `id` claims its partitions: the one sink downstream that stores partitioned positions with its
   * data (engine/operator.ts, "Partitioned positions"). Two such sinks would each hand out epochs of their own
   * and could disagree on where a partition resumes: refused at the first claim, naming them.
   */
  private partitionStore(id: string): PartitionStore | undefined {
    const storing = downstreamSinks(this.graph, id).filter((sinkId) => this.stages.get(sinkId)?.sink?.claimPartitions);
    if (storing.length === 0) return undefined;
    if (storing.length > 1) {
      return {
        claim: () =>
          Promise.reject(
            new EtlError(
              'ETL_STATE_MISMATCH',
              `source ${id} reaches ${storing.length} sinks that store partition positions (${storing.join(', ')}); ` +
                'only one may: split the pipeline, one per sink',
            ),
          ),
      };
    }
    const sinkId = storing[0] as string;
    const sink = this.stages.get(sinkId)?.sink as Sink;
    return { claim: (keys) => (sink.claimPartitions as NonNullable<Sink['claimPartitions']>).call(sink, keys) };
  }

  /**
   * Opens sinks and transforms and restores them to the checkpoint the run resumes from (state/resume.ts),
   * which it returns with the last snapshot id in use.
   */
  private async open(
    state: PipelineState | undefined,
    stateLastId: number,
  ): Promise<{ resumeFrom: CheckpointRecord | undefined; lastId: number }> {
    const sinks = [...this.stages.values()].filter((s) => s.sink);
    for (const stage of sinks) {
      await this.guard(stage, 'open', () => stage.sink?.open?.());
    }
    const sinkRecords: Array<{ sink: string; committed: CommittedCheckpoint | undefined }> = [];
    for (const stage of sinks) {
      const own = stage.sink?.committedCheckpoint?.bind(stage.sink);
      if (own) sinkRecords.push({ sink: stage.spec.id, committed: await this.guard(stage, 'open', own) });
    }
    const decision = decideResume({
      pipeline: this.spec.name,
      state,
      sinkRecords,
      stateOnlyHere: this.stateOnlyInDirectory(),
      forget: this.options.forget ?? [],
      reset: this.options.reset === true,
    });
    for (const warning of decision.warnings) this.log.warn(warning);
    const resumeFrom = decision.resumeFrom;
    if (decision.save && resumeFrom) await this.store.save({ committed: resumeFrom });
    for (const stage of sinks) {
      await this.guard(stage, 'open', () => stage.sink?.restore?.(resumeFrom?.sinks[stage.spec.id], resumeFrom?.id));
    }
    await this.keyed.restore(resumeFrom?.keyed, resumeFrom?.id);
    for (const stage of this.stages.values()) {
      const transform = stage.transform;
      if (!transform) continue;
      await this.guard(stage, 'open', () => transform.open?.());
      await this.guard(stage, 'open', () => transform.restore?.(resumeFrom?.transforms[stage.spec.id], resumeFrom?.id));
    }
    if (resumeFrom) this.log.info('resuming from checkpoint', { checkpoint: resumeFrom.id, time: resumeFrom.time });
    return { resumeFrom, lastId: Math.max(stateLastId, decision.lastId) };
  }

  /**
   * Stages whose state a rerun finds only in the state directory: committing sinks without a record of
   * their own, and transforms with state (inline, keyed, or committed outside the process).
   */
  private stateOnlyInDirectory(): string[] {
    const keyed = this.keyed.stages();
    const ids: string[] = [];
    for (const [id, stage] of this.stages) {
      const sink = stage.sink;
      const transform = stage.transform;
      if (sink && (sink.prepareCommit || sink.commit) && !sink.committedCheckpoint) ids.push(id);
      if (transform && (transform.snapshot || transform.prepareCommit || keyed.has(id))) ids.push(id);
    }
    return ids;
  }

  // ------------------------------------------------------------------------------------- wiring

  /** What stage `to` reads of `ref`, each batch counted on the edge until `to` has processed it. */
  private portStream(ref: { stage: string; port: string }, to: string): Observable<Envelope> {
    const upstream = this.stages.get(ref.stage)?.output$;
    if (!upstream) throw new Error(`stage ${ref.stage} is not wired yet`);
    const edge = this.pipelineTelemetry.edge(ref.port === DEFAULT_PORT ? ref.stage : `${ref.stage}.${ref.port}`, to);
    const copy = this.copying.has(edgeKey(ref.stage, ref.port, to));
    return upstream.pipe(
      filter((out) => out.port === ref.port),
      map((out): Envelope => {
        edge.sent++;
        return copy ? { ...out.envelope, records: copyRecords(out.envelope.records), edge } : { ...out.envelope, edge };
      }),
    );
  }

  /** Builds and connects the RxJS graph; resolves when every stage has completed. */
  private wire(): Promise<void> {
    const order = this.graph.order as string[];
    const completions: Promise<void>[] = [];
    for (const id of order) {
      const stage = this.stages.get(id) as StageInstance;
      let stream: Observable<PortEnvelope>;
      if (stage.source) {
        stream = this.sourceStream(stage, stage.source);
      } else {
        const inputs = stage.spec.inputs.map((ref) => this.portStream(ref, id));
        const data$ = inputs.length === 1 ? (inputs[0] as Observable<Envelope>) : merge(...inputs);
        const ticks = this.tickGates.get(id);
        const input$ =
          ticks && stage.transform ? withTicks(data$, ticks, stage.transform.tickIntervalMs ?? 1000) : data$;
        // The first stage of a chain on worker threads keeps each worker busy with a batch and one waiting.
        const chain = this.chains.get(id);
        const concurrency =
          chain?.stages[0] === id ? Math.max(stage.spec.maxInFlight, chain.workers * 2) : stage.spec.maxInFlight;
        stream = input$.pipe(
          stage.transform
            ? stageOperator(
                this.transformHandler(stage, stage.transform),
                () => this.finishTransform(stage),
                concurrency,
              )
            : stageOperator(this.sinkHandler(stage, stage.sink as Sink), async () => [], concurrency),
        );
        if (stage.sink && this.consumers.has(`${id}.${DEAD_LETTER_PORT}`)) {
          const late = new Subject<PortEnvelope>();
          this.lateOutputs.set(id, late);
          stream = withLate(stream, late);
        }
      }
      const output$ = connectable(stream, { connector: () => new Subject<PortEnvelope>(), resetOnDisconnect: false });
      stage.output$ = output$;
      completions.push(
        new Promise<void>((resolve) => {
          output$.subscribe({
            error: (error: unknown) => {
              this.fail(error, id);
              resolve();
            },
            complete: resolve,
          });
        }),
      );
    }
    // Connect downstream first: a stage subscribes to its inputs' subjects before any data flows.
    for (const id of [...order].reverse()) {
      const stage = this.stages.get(id) as StageInstance;
      if (!stage.source) stage.output$?.connect();
    }
    for (const id of order) {
      const stage = this.stages.get(id) as StageInstance;
      if (stage.source) stage.output$?.connect();
    }
    return Promise.all(completions).then(() => undefined);
  }

  private sourceStream(stage: StageInstance, source: Source): Observable<PortEnvelope> {
    const id = stage.spec.id;
    const gate = this.gates.get(id) as CreditGate;
    const consumers = this.consumers.get(`${id}.${DEFAULT_PORT}`)?.length ?? 0;
    const stopping = this.stopSources.signal;
    // etl_source_read_lines_total counts the records of sources that emit one per line read.
    const linesOut = stage.spec.definition.kind === 'source' && sourceEmitsLines(stage.spec);
    return new Observable<PortEnvelope>((subscriber) => {
      let lastYieldAt = performance.now();
      const output: SourceOutput = {
        stopping,
        emit: async (records: EtlRecord[], position?: unknown, bytes?: number, batch?: BatchOptions) => {
          // A source whose batches are all handled synchronously (a generator into a blackhole) would run
          // on microtasks alone: timers, signals, I/O and the other pipelines of the process would wait for
          // its end. It gives the event loop a turn every few milliseconds.
          if (performance.now() - lastYieldAt >= YIELD_EVERY_MS) {
            await new Promise((resolve) => setImmediate(resolve));
            lastYieldAt = performance.now();
          }
          const deadLetters = batch?.deadLetters ?? [];
          if (records.length === 0 && deadLetters.length === 0) {
            // Nothing to deliver; checkpoints drain before they read positions, so it can move now.
            if (stopping.aborted) return this.acks.notSent();
            if (position !== undefined) {
              this.positions.set(id, position);
              this.checkpoints?.markDirty();
            }
            return this.acks.emitted();
          }
          const waitFrom = performance.now();
          if (!(await gate.acquire(stopping))) return this.acks.notSent();
          const readAt = Date.now();
          stage.telemetry.creditWait((performance.now() - waitFrom) / 1000);
          // With dead letters, the batch goes through `route`, which offers each port to the taps.
          if (taps.active && deadLetters.length === 0) taps.offer(this.spec.name, id, DEFAULT_PORT, records);
          const emitted = this.acks.emitted();
          this.positions.set(id, position);
          this.checkpoints?.markDirty();
          this.stats.recordsIn += records.length + deadLetters.length;
          if (bytes !== undefined) {
            this.stats.bytesRead += bytes;
          }
          stage.telemetry.received(records.length + deadLetters.length, bytes);
          stage.telemetry.read(bytes ?? 0, linesOut ? records.length : 0);
          stage.telemetry.batch();
          const parent =
            batch?.traceparent === undefined ? undefined : stage.telemetry.remoteParent?.(batch as RemoteTraceContext);
          const span = stage.telemetry.startBatch(parent, records.length, bytes);
          span?.end(records.length);
          if (deadLetters.length === 0) {
            if (consumers === 0) {
              gate.release();
              return emitted;
            }
            const delivery = new Delivery(() => gate.release());
            delivery.retain(consumers);
            stage.telemetry.sent(records.length, DEFAULT_PORT);
            this.options.onStats?.(this.stats);
            subscriber.next({ port: DEFAULT_PORT, envelope: { records, delivery, trace: span?.context, readAt } });
            return emitted;
          }
          // Records the source could not read leave on its `dead_letter` port, in the same delivery: the batch is
          // acknowledged (and durable) only once both are.
          const delivery = new Delivery(() => gate.release());
          delivery.retain(1);
          const envelope = { records, delivery, trace: span?.context, readAt };
          const ports = { [DEFAULT_PORT]: records, [DEAD_LETTER_PORT]: deadLetters as EtlRecord[] };
          for (const out of this.route(stage, envelope, ports, span?.context)) subscriber.next(out);
          this.options.onStats?.(this.stats);
          delivery.release();
          return emitted;
        },
        onCommitted: (listener) => {
          this.checkpoints?.onCommitted((record) => {
            if (id in record.positions) listener(record.positions[id]);
          });
        },
        inputError: (reason: string, where?: Omit<Origin, 'source'>) => {
          this.stats.errors++;
          this.stats.inputErrors++;
          stage.telemetry.error('read');
          stage.logger.error(reason, where ? { ...where } : undefined);
          this.options.onStats?.(this.stats);
        },
        progress: (_done: number, total: number) => {
          this.sourceProgress.set(id, total);
          let sum = 0;
          for (const t of this.sourceProgress.values()) sum += t;
          this.stats.bytesTotal = sum;
        },
      };
      source.run(output).then(
        () => subscriber.complete(),
        (error: unknown) => {
          stage.telemetry.error('process');
          subscriber.error(wrap(error, 'ETL_RUN_SOURCE_FAILED', id));
        },
      );
    });
  }

  /** Routes a stage's port records to envelopes, retaining the delivery once per consumer. */
  private route(stage: StageInstance, input: Envelope, ports: PortRecords, trace: unknown): PortEnvelope[] {
    const id = stage.spec.id;
    const outputs: PortEnvelope[] = [];
    for (const port in ports) {
      const records = ports[port] as EtlRecord[];
      if (records.length === 0) continue;
      if (taps.active) taps.offer(this.spec.name, id, port, records);
      if (port === DEAD_LETTER_PORT) {
        // Dead letters a stage passes on (anonymize scrubs those it reads) were counted by the stage that made them.
        const own = records.filter((r) => r.stage === id);
        this.countRejected(id, own.length);
        stage.telemetry.deadLettered(own.length);
        // A source has no on_error (it is `fail`): its dead letters are input it refuses, not a failure.
        if (stage.spec.onError === 'fail' && !stage.source && own.length > 0) {
          const first = own[0] as { reason?: unknown };
          throw new EtlError(
            'ETL_RUN_STAGE_FAILED',
            `stage ${id} rejected a record (on_error: fail): ${String(first.reason)}`,
          );
        }
      }
      const consumers = this.consumers.get(`${id}.${port}`)?.length ?? 0;
      if (consumers === 0) {
        stage.telemetry.discarded(records.length, port === DEAD_LETTER_PORT ? 'dead_letter_unread' : 'port_unread');
        if (port === DEAD_LETTER_PORT && !this.warnedUnread.has(id)) {
          this.warnedUnread.add(id);
          const first = records[0] as { reason?: unknown };
          stage.logger.warn(
            `stage ${id} rejected records and no stage reads ${id}.dead_letter; they are counted, not kept`,
            {
              reason: first.reason,
            },
          );
        }
        continue;
      }
      input.delivery.retain(consumers);
      stage.telemetry.sent(records.length, port);
      outputs.push({ port, envelope: { records, delivery: input.delivery, trace, readAt: input.readAt } });
    }
    return outputs;
  }

  private transformHandler(stage: StageInstance, transform: Transform) {
    const policy = stage.spec;
    const watermark = this.watermarks.get(stage.spec.id);
    const fanIn = this.commitLinks && (transform.tick || transform.flush) ? new TraceLinks() : undefined;
    if (fanIn) this.fanIn.set(stage.spec.id, fanIn);
    return (envelope: Envelope): PortEnvelope[] | Promise<PortEnvelope[]> => {
      const records = envelope.records;
      if (envelope.tick) return this.tick(stage, transform, envelope);
      watermark?.observe(records);
      stage.telemetry.received(records.length);
      const startedAt = performance.now();
      const span = stage.telemetry.startBatch(envelope.trace, records.length);
      fanIn?.add(span);
      // The span ends once: with the records sent on, and the error when the batch failed.
      const done = (ports: PortRecords, error?: unknown): PortEnvelope[] => {
        stage.telemetry.batch((performance.now() - startedAt) / 1000);
        const outputs = this.route(stage, envelope, ports, span?.context ?? envelope.trace);
        if (span !== undefined) {
          const sent = outputs.reduce((n, o) => n + o.envelope.records.length, 0);
          span.end(sent, error, span.sampled ? ownDeadLetters(ports, stage.spec.id) : 0);
        }
        return outputs;
      };
      const onError = (error: unknown): PortEnvelope[] => {
        stage.telemetry.error('process');
        this.stats.errors++;
        if (policy.onError === 'dead_letter') {
          const reason = errorMessage(error);
          return done({ [DEAD_LETTER_PORT]: records.map((r) => deadLetter(r, stage.spec.id, reason)) }, error);
        }
        span?.end(0, error);
        throw wrap(error, 'ETL_RUN_STAGE_FAILED', stage.spec.id);
      };
      if (policy.onError === 'retry') {
        return retry(async () => transform.process(records), {
          policy: policy.retry,
          signal: this.hardAbort.signal,
          retriable: (error) => isRetriable(error),
          onRetry: (error, attempt, delay) => {
            this.stats.errors++;
            stage.telemetry.error('process');
            stage.logger.warn(`retrying batch (attempt ${attempt}) in ${delay} ms: ${errorMessage(error)}`);
          },
        }).then(done, onError);
      }
      try {
        const result = transform.process(records);
        return result instanceof Promise ? result.then(done, onError) : done(result);
      } catch (error) {
        return onError(error);
      }
    };
  }

  /** A tick of a ticking transform: what it emits leaves on the tick's own delivery. */
  private async tick(stage: StageInstance, transform: Transform, envelope: Envelope): Promise<PortEnvelope[]> {
    try {
      const ports = (await transform.tick?.(Date.now())) ?? {};
      return this.route(stage, envelope, ports, this.outputSpan(stage, ports));
    } catch (error) {
      stage.telemetry.error('process');
      throw wrap(error, 'ETL_RUN_STAGE_FAILED', stage.spec.id);
    }
  }

  private async finishTransform(stage: StageInstance): Promise<PortEnvelope[]> {
    const ports = (await stage.transform?.flush?.()) ?? {};
    const trace = this.outputSpan(stage, ports);
    return this.route(stage, { records: [], delivery: detachedDelivery(), trace: undefined }, ports, trace);
  }

  /**
   * Fan-in: what a transform emits at a tick or a flush (a window closing) comes from many batches. It gets a
   * span of its own, linked to the sampled batches the stage received since its last such output.
   */
  private outputSpan(stage: StageInstance, ports: PortRecords): unknown {
    const fanIn = this.fanIn.get(stage.spec.id);
    if (fanIn === undefined) return undefined;
    let count = 0;
    for (const port in ports) count += (ports[port] as EtlRecord[]).length;
    if (count === 0) return undefined;
    const span = stage.telemetry.startBatch(undefined, 0, undefined, fanIn.take());
    span?.end(count, undefined, span.sampled ? ownDeadLetters(ports, stage.spec.id) : 0);
    return span?.context;
  }

  private sinkHandler(stage: StageInstance, sink: Sink) {
    const id = stage.spec.id;
    const policy = stage.spec;
    return async (envelope: Envelope): Promise<PortEnvelope[]> => {
      // A sink without `cut` takes no write of the next snapshot until it has committed the last one.
      const held = this.holds.get(id);
      if (held) await held;
      const records = envelope.records;
      stage.telemetry.received(records.length);
      const startedAt = performance.now();
      const span = stage.telemetry.startBatch(envelope.trace, records.length);
      let rejected: EtlRecord[] = [];
      let failure: unknown;
      const write = async () => {
        rejected = [];
        const t0 = performance.now();
        try {
          const traceparent = span?.traceparent;
          await sink.write(records, {
            deadLetter: (record, reason) => rejected.push(deadLetter(record, id, reason)),
            ...(traceparent === undefined ? {} : { traceparent }),
          });
        } finally {
          stage.telemetry.writeTime((performance.now() - t0) / 1000);
        }
      };
      try {
        if (policy.onError === 'retry') {
          await retry(write, {
            policy: policy.retry,
            signal: this.hardAbort.signal,
            onRetry: (error, attempt, delay) => {
              this.stats.errors++;
              stage.telemetry.error('write');
              stage.telemetry.retry();
              stage.logger.warn(
                `sink write failed (attempt ${attempt}), retrying in ${delay} ms: ${errorMessage(error)}`,
              );
            },
          });
        } else {
          await write();
        }
      } catch (error) {
        this.stats.errors++;
        stage.telemetry.error('write');
        if (policy.onError !== 'dead_letter') {
          span?.end(0, error);
          throw wrap(error, 'ETL_RUN_SINK_FAILED', id);
        }
        failure = error;
        rejected = records.map((r) => deadLetter(r, id, errorMessage(error)));
      }
      const written = records.length - rejected.length;
      stage.telemetry.batch((performance.now() - startedAt) / 1000);
      stage.pending?.wrote(this.checkpoints?.nextSnapshotId ?? this.firstSnapshotId, records, written, envelope.readAt);
      this.checkpoints?.markDirty();
      const figures = this.stats.sinks[id] as SinkStats;
      figures.written += written;
      if (!figures.deadLetters) this.stats.recordsOut += written;
      span?.end(written, failure, rejected.length);
      this.commitLinks?.written(id, span);
      this.options.onStats?.(this.stats);
      return rejected.length > 0 ? this.route(stage, envelope, { [DEAD_LETTER_PORT]: rejected }, span?.context) : [];
    };
  }

  // --------------------------------------------------------------------------- late dead letters

  private countRejected(stageId: string, count: number): void {
    if (count === 0) return;
    this.stats.rejected += count;
    const by = this.stats.rejectedBy ?? {};
    by[stageId] = (by[stageId] ?? 0) + count;
    this.stats.rejectedBy = by;
  }

  /**
   * Sends the late dead letters `record` holds on their sinks' dead_letter ports, after a turn of the event
   * loop (the checkpoint that found them resumes credit first). A sink whose output is done already keeps
   * them for `deliverLeftovers`.
   */
  private deliverLate(record: CheckpointRecord): void {
    for (const [sinkId, letters] of Object.entries(record.late ?? {})) {
      const records = letters.map(withOriginRestored);
      const stage = this.stages.get(sinkId);
      if (!stage || records.length === 0) continue;
      this.countRejected(sinkId, records.length);
      stage.telemetry.deadLettered(records.length);
      const late = this.lateOutputs.get(sinkId);
      if (!late) {
        stage.telemetry.discarded(records.length, 'dead_letter_unread');
        continue;
      }
      if (late.isStopped) {
        this.leftovers.push({ sinkId, records });
        continue;
      }
      void this.lateGate.acquire(this.hardAbort.signal).then((granted) => {
        if (!granted) return;
        if (late.isStopped) {
          this.lateGate.release();
          this.leftovers.push({ sinkId, records });
          return;
        }
        const consumers = this.consumers.get(`${sinkId}.${DEAD_LETTER_PORT}`)?.length ?? 0;
        const delivery = new Delivery(() => this.lateGate.release());
        delivery.retain(consumers);
        stage.telemetry.sent(records.length, DEAD_LETTER_PORT);
        this.checkpoints?.markDirty();
        late.next({ port: DEAD_LETTER_PORT, envelope: { records, delivery, trace: undefined } });
      });
    }
  }

  /**
   * Late dead letters of the final checkpoint find the graph done: they are written to the sinks that read
   * them, and one more checkpoint makes them durable. When a transform reads them they stay in the
   * checkpoint instead, and the next run sends them.
   */
  private async deliverLeftovers(checkpoints: Checkpoints): Promise<void> {
    const leftovers = this.leftovers;
    this.leftovers = [];
    if (leftovers.length === 0) return;
    const targets = leftovers.flatMap(({ sinkId }) =>
      (this.consumers.get(`${sinkId}.${DEAD_LETTER_PORT}`) ?? []).map((id) => this.stages.get(id) as StageInstance),
    );
    if (targets.some((stage) => !stage.sink)) {
      this.log.warn('late dead letters of the last checkpoint go to a transform: the next run sends them');
      return;
    }
    for (const { sinkId, records } of leftovers) {
      for (const id of this.consumers.get(`${sinkId}.${DEAD_LETTER_PORT}`) ?? []) {
        const target = this.stages.get(id) as StageInstance;
        await this.guard(target, 'flush', () =>
          target.sink?.write(records, {
            deadLetter: (_record, reason) => target.logger.warn(`a late dead letter was refused: ${reason}`),
          }),
        );
        (this.stats.sinks[id] as SinkStats).written += records.length;
      }
    }
    checkpoints.markDirty();
    await this.flushSinks();
    await checkpoints.take();
  }

  // -------------------------------------------------------------------------------- checkpoints

  private createCheckpoints(resumeFrom: CheckpointRecord | undefined, nextId: number): Checkpoints {
    const stages = [...this.stages.values()];
    const byId = (id: string) => this.stages.get(id) as StageInstance;
    return new Checkpoints(
      {
        gates: [...this.gates.values(), ...this.tickGates.values(), this.lateGate],
        sinks: stages.flatMap((s) => (s.sink ? [{ id: s.spec.id, sink: s.sink }] : [])),
        positions: () => Object.fromEntries(this.positions),
        snapshotState: async (snapshot) => {
          // Snapshots first: a transform may write its last changes into its keyed state at the cut (an aggregate
          // serialises the sketches of the windows changed since the last one then, not at every record). The
          // pipeline stays drained while they await; the keyed changes are then taken at once, synchronously.
          const transforms: Record<string, unknown> = {};
          for (const stage of stages) {
            const transform = stage.transform;
            if (!transform?.snapshot) continue;
            transforms[stage.spec.id] = await this.guard(stage, 'commit', () => transform.snapshot?.(snapshot));
          }
          const keyed = this.keyed.prepare(snapshot.id);
          return { transforms, keyed };
        },
        transforms: stages.flatMap((s) =>
          s.transform && (s.transform.prepareCommit || s.transform.commit)
            ? [{ id: s.spec.id, transform: s.transform }]
            : [],
        ),
        stageTypes: (transforms) => this.statefulStages(transforms),
        fingerprints: stageFingerprints(this.spec),
        hold: (sinkId, release) => {
          this.holds.set(sinkId, release);
          release.then(() => {
            if (this.holds.get(sinkId) === release) this.holds.delete(sinkId);
          });
        },
        save: (state) => this.store.save(state),
        deadLetter: (sinkId, record, reason) => deadLetter(record, sinkId, reason),
        guard: (sinkId, fn) => this.guard(byId(sinkId), 'commit', fn),
        failed: () => this.failure !== undefined,
        fail: (error) => this.fail(error),
        abort: this.hardAbort.signal,
        sinkCommitted: (sinkId, seconds) => byId(sinkId).telemetry.commitTime(seconds),
      },
      { lastCommitted: resumeFrom, nextId, intervalMs: this.spec.settings.checkpointIntervalMs },
    );
  }

  /** A checkpoint committed: its duration and time, and what each sink wrote for it is now durable. */
  private committedMetrics(record: CheckpointRecord, seconds: number): void {
    const at = Date.now();
    this.pipelineTelemetry.checkpointCommitted(at, seconds);
    for (const stage of this.stages.values()) stage.pending?.committed(record.id, at);
  }

  /** `kind:type` of the stages a checkpoint holds state for: sources, sinks, transforms with state. */
  private statefulStages(transforms: Record<string, unknown>): Record<string, string> {
    const types = stageTypes(this.spec);
    const keyed = this.keyed.stages();
    return Object.fromEntries(
      this.spec.stages
        .filter((s) => s.kind !== 'transform' || s.id in transforms || keyed.has(s.id))
        .map((s) => [s.id, types[s.id] as string]),
    );
  }

  // ------------------------------------------------------------------------------- lifecycle

  private async flushSinks(): Promise<void> {
    for (const stage of this.stages.values()) {
      if (stage.sink?.flush) await this.guard(stage, 'flush', () => stage.sink?.flush?.());
    }
  }

  private async closeAll(): Promise<void> {
    this.stopSources.abort();
    // Sources first, then transforms, then sinks: the order data flows in.
    for (const id of this.graph.order ?? []) {
      const stage = this.stages.get(id);
      if (!stage) continue;
      const close = stage.source?.close ?? stage.transform?.close ?? stage.sink?.close;
      if (!close) continue;
      try {
        await close.call(stage.source ?? stage.transform ?? stage.sink);
      } catch (error) {
        stage.telemetry.error('close');
        stage.logger.error(`close failed: ${errorMessage(error)}`);
      }
    }
  }

  private async guard<T>(
    stage: StageInstance,
    phase: 'open' | 'commit' | 'flush',
    fn: () => T | Promise<T>,
  ): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      stage.telemetry.error(phase);
      this.stats.errors++; // the summary's count: a stage that could not open, flush or commit failed the run
      throw wrap(
        error,
        stage.spec.kind === 'sink' ? 'ETL_RUN_SINK_FAILED' : 'ETL_RUN_STAGE_FAILED',
        stage.spec.id,
        phase,
      );
    }
  }

  /**
   * Asks every transform for its report, once, for the summary. A report's failure fails the run: everything was
   * delivered and checkpointed by then, so only the outcome (and `etl apply`'s exit code) changes.
   */
  private collectReports(): void {
    if (this.reportsCollected) return;
    this.reportsCollected = true;
    for (const stage of this.stages.values()) {
      if (!stage.transform?.summarize) continue;
      let report: StageReport | undefined;
      try {
        report = stage.transform.summarize();
      } catch (error) {
        stage.logger.error(`could not report on the run: ${errorMessage(error)}`);
        continue;
      }
      if (report === undefined) continue;
      const id = stage.spec.id;
      this.stats.reports.push({
        stage: id,
        lines: [...report.lines],
        ...(report.failure === undefined ? {} : { failure: report.failure }),
        ...(report.counts === undefined ? {} : { counts: { ...report.counts } }),
      });
      if (report.failure !== undefined) {
        this.fail(new EtlError('ETL_RUN_CHECK_FAILED', `stage ${id}: ${report.failure}`));
      }
    }
  }

  private fail(error: unknown, stage?: string): void {
    if (this.failure) return;
    this.failure = error instanceof Error ? error : new Error(String(error));
    this.log.error(`pipeline failed${stage ? ` in stage ${stage}` : ''}: ${errorMessage(error)}`);
    this.stopSources.abort();
    this.hardAbort.abort(this.failure);
  }
}

function wrap(
  error: unknown,
  code: 'ETL_RUN_STAGE_FAILED' | 'ETL_RUN_SINK_FAILED' | 'ETL_RUN_SOURCE_FAILED',
  stage: string,
  phase?: string,
): EtlError {
  if (error instanceof EtlError && error.message.startsWith('stage ')) return error;
  return new EtlError(code, `stage ${stage}${phase ? ` (${phase})` : ''}: ${errorMessage(error)}`, { cause: error });
}

/** Dead letters a stage made itself among those it sends (not those it passes on). */
function ownDeadLetters(ports: PortRecords, stageId: string): number {
  const letters = ports[DEAD_LETTER_PORT];
  if (letters === undefined) return 0;
  let own = 0;
  for (const letter of letters) if (letter.stage === stageId) own++;
  return own;
}

/** A sink's output with its late dead letters: `late` ends (and takes no more) when the sink's output ends. */
function withLate(output$: Observable<PortEnvelope>, late: Subject<PortEnvelope>): Observable<PortEnvelope> {
  return new Observable<PortEnvelope>((subscriber) => {
    const fromLate = late.subscribe((out) => subscriber.next(out));
    const fromSink = output$.subscribe({
      next: (out) => subscriber.next(out),
      error: (error: unknown) => subscriber.error(error),
      complete: () => {
        late.complete();
        subscriber.complete();
      },
    });
    return () => {
      fromLate.unsubscribe();
      fromSink.unsubscribe();
    };
  });
}

/** A dead letter read back from a checkpoint: its origin rides on the symbol again. */
function withOriginRestored(letter: DeadLetter): EtlRecord {
  const record: EtlRecord = { ...letter };
  const origin = letter.origin;
  if (origin?.source !== undefined) record[ORIGIN] = { ...origin, source: origin.source };
  return record;
}

/**
 * `data$` with a tick envelope every `intervalMs` while it runs. A tick waits for nothing: when the previous
 * one is still in flight, or a checkpoint is draining (the gate is paused), that tick is skipped.
 */
function withTicks(data$: Observable<Envelope>, gate: CreditGate, intervalMs: number): Observable<Envelope> {
  return new Observable<Envelope>((subscriber) => {
    const timer = setInterval(() => {
      if (!gate.tryAcquire()) return;
      const delivery = new Delivery(() => gate.release());
      delivery.retain(1);
      subscriber.next({ records: [], delivery, trace: undefined, tick: true });
    }, intervalMs);
    timer.unref();
    const subscription = data$.subscribe({
      next: (envelope) => subscriber.next(envelope),
      error: (error: unknown) => {
        clearInterval(timer);
        subscriber.error(error);
      },
      complete: () => {
        clearInterval(timer);
        subscriber.complete();
      },
    });
    return () => {
      clearInterval(timer);
      subscription.unsubscribe();
    };
  });
}

/** Whether the source's default port carries raw lines (`raw` records): then its records are the lines it read. */
function sourceEmitsLines(spec: StageSpec): boolean {
  const def = spec.definition as SourceDefinition;
  const outputs = def.outputsFor?.(spec.options) ?? def.outputs;
  return outputs[DEFAULT_PORT] === 'raw';
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
