/**
 * The operator contract. An operator is one folder under operators/<sources|transforms|sinks>/<type>/
 * whose index.ts default-exports `defineSource`, `defineTransform` or `defineSink(...)`, plus one line
 * in operators/registry.ts. The runtime owns batching, credit, acks, retries, spans and metrics;
 * operators only turn records into records (or bytes into records, or records into storage).
 *
 * A definition is what `etl validate` needs (schema, ports, checks); `create` may be async so that the
 * implementation and its dependencies load only when a pipeline runs (`create: async (options, ctx) =>
 * (await import('./file.ts')).createFileSource(options, ctx)`): the CLI starts in a fraction of the time.
 */
import type { EtlRecord, Origin, RecordKind } from './record.ts';
import type { RecordSchema } from './record-schema.ts';

/**
 * A JSON Schema object literal (`as const`); the options type is derived from it with FromSchema. A top-level
 * option marked `writeOnly: true` is a secret (a key, a password): `etl validate` warns (`ETL_CFG_SECRET`) when its
 * value is not read from a `${secret:…}` variable, the only values masked in every message.
 */
export type OptionsSchema = { readonly $id: string; readonly type: 'object'; readonly [key: string]: unknown };

export type Stability = 'stable' | 'beta' | 'alpha';

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** What every operator is given; it never reaches into globals or the graph. */
export interface OperatorContext {
  readonly pipeline: string;
  /** The stage id in the pipeline document. */
  readonly id: string;
  readonly logger: Logger;
  /** Aborted when the run must stop now (second signal, fatal error, deadline). */
  readonly signal: AbortSignal;
  /** Working directory for state of this pipeline (`settings.data_dir`, default `.etl`), already created. */
  readonly dataDir: string;
  /** The directory relative paths in options resolve against: the one `etl` was started in. */
  readonly baseDir: string;
  /** Operator-specific metrics (the runtime already counts records, bytes, errors). */
  readonly metrics: OperatorMetrics;
  /**
   * This stage's output ports that some stage reads. Records sent on a port nobody reads are counted and
   * discarded: an operator whose named port carries records that exist nowhere else (parse's `error_log`)
   * sends them to `dead_letter` instead when that port is not read, so that nothing is lost unseen.
   */
  readonly readPorts: ReadonlySet<string>;
  /**
   * Asks the runtime to take a checkpoint soon (e.g. a sink whose uncommitted buffer grows large).
   * The runtime coalesces requests; checkpoints still happen on the pipeline's interval. The next checkpoint
   * is taken even when nothing was read or written since the last one, the run's final one included: a sink's
   * `flush` that leaves work for the last checkpoint (uploading what it staged) asks for it so.
   */
  requestCheckpoint(): void;
  /** The id of the snapshot the records being processed now will be part of (the next cut's). */
  snapshotId(): number;
  /**
   * For a transform with `tick`: the event-time watermark of its inputs (epoch milliseconds), below which no
   * record is expected any more (settings `event_time_field`, `watermark_lateness_seconds`,
   * `idle_source_seconds`); undefined before the first record with an event time.
   */
  watermark(): number | undefined;
  /**
   * A map from string keys to JSON-serialisable values that the runtime checkpoints with the pipeline:
   * each checkpoint stores only the keys changed since the previous one (an append-only log per map, compacted
   * when it grows past twice the live data), and a rerun finds the map as it was at the committed cut. Made at
   * `create`; filled before `restore`. One name per map within a stage.
   */
  keyed<V>(name: string): KeyedState<V>;
  /** The client of shared resource `name` (`spec.resources`), open already; the type its `uses` declared. */
  resource<T>(name: string): T;
  /**
   * The schema of the records reaching this stage (the union over its inputs), as the graph pass computed it
   * (engine/record-schema.ts); undefined for sources. A sink derives its columns from it.
   */
  readonly inputSchema?: RecordSchema;
  /**
   * Set when the user asked to wait for a lock another run holds (`etl apply --wait`) rather than be refused
   * (a sink's lock on a shared server); aborted when the run is asked to stop while it waits.
   */
  readonly waitForLocks?: AbortSignal;
  /**
   * What only the operator sees, for the metrics the runtime keeps of every stage: a sink's reconnections and
   * circuit breaker, a source's lag and open files. Set by the runtime; absent where an operator runs alone.
   */
  readonly signals?: StageSignals;
}

/** `OperatorContext.signals`. */
export interface StageSignals {
  /** The connection to the server was lost and made again (etl_sink_reconnects_total). */
  reconnected(): void;
  /** The stage's circuit breaker changed state (etl_sink_circuit_state). */
  circuit(state: CircuitState): void;
  /** How to read the source's state at scrape (etl_source_lag_bytes, etl_source_open_files); called once. */
  sourceState(read: () => SourceState): void;
}

/** `open`: the server is given up on for now (loading waits); `half_open`: one attempt is let through. */
export type CircuitState = 'closed' | 'half_open' | 'open';

/** What a source tells of its input at scrape. */
export interface SourceState {
  /** Bytes behind the end of the input (the sum over files for a file source). */
  readonly lagBytes?: number;
  /** Files the source holds open. */
  readonly openFiles?: number;
}

/** Keyed operator state (`ctx.keyed`): a Map whose changes are checkpointed incrementally. */
export interface KeyedState<V> {
  get(key: string): V | undefined;
  has(key: string): boolean;
  /** Values are stored as JSON: a value changed in place must be `set` again to be checkpointed. */
  set(key: string, value: V): void;
  delete(key: string): boolean;
  readonly size: number;
  keys(): IterableIterator<string>;
  entries(): IterableIterator<[string, V]>;
}

export interface OperatorMetrics {
  counter(name: string, help: string, labels?: Record<string, string>): { inc(value?: number): void };
  gauge(name: string, help: string, labels?: Record<string, string>): { set(value: number): void };
}

/** A problem found by an operator's cross-field validation; `path` is relative to the stage's options. */
export interface OptionProblem {
  path: (string | number)[];
  message: string;
  hint?: string;
  severity?: 'error' | 'warning';
  /** `ETL_GRAPH_UNKNOWN_FIELD` when the option names a field or column the records cannot fill; default `ETL_CFG_INVALID`. */
  code?: 'ETL_CFG_INVALID' | 'ETL_GRAPH_UNKNOWN_FIELD';
  /** A character offset inside the string value at `path` (where in an expression): the diagnostic's column. */
  offset?: number;
}

/** What an operator's `validate` is told about the stage's place in the graph. */
export interface ValidateContext {
  /**
   * The schema of the records reaching the stage; undefined for sources, and when it cannot be known because of
   * problems reported elsewhere (an input naming no stage, a cycle): checks that need it are then skipped.
   */
  readonly inputSchema: RecordSchema | undefined;
}

/**
 * The records on one input of a stage, for `outputSchemas`: a stage reading several ports receives their union
 * as `input`; a transform that treats records of some kind apart (dead letters) reads them one by one here.
 */
export interface InputSchema {
  readonly kind: RecordKind;
  readonly schema: RecordSchema;
}

/** An option value naming a field of the records a stage receives, checked against the schema reaching it. */
export interface FieldUse {
  /** Where the options name it, relative to the stage's options. */
  readonly path: readonly (string | number)[];
  /** The field; a dotted name (`upstream.addr`) is a field literally named so, or a path into object fields. */
  readonly field: string;
}

interface DefinitionBase<S extends OptionsSchema, O> {
  readonly type: string;
  readonly stability: Stability;
  /** One line for `etl --help`, docs and the schema's description. */
  readonly summary: string;
  /** JSON Schema of the operator's own options (without the common stage keys). */
  readonly schema: S;
  /** Complete example option objects (without `type`/`inputs`); each must validate. */
  readonly examples: readonly O[];
  /**
   * Cross-field checks that JSON Schema cannot express, and checks against the records reaching the stage;
   * runs before any I/O, once the graph pass has computed the record schema at every port.
   */
  validate?(options: O, context: ValidateContext): OptionProblem[];
  /**
   * The shared resources (`spec.resources`) these options name, and of which type each must be: checked at
   * validate time (a name declared nowhere, or a resource of another type, is an error at `path`).
   */
  uses?(options: O): readonly ResourceUse[];
}

export interface ResourceUse {
  /** Where the options name the resource, relative to the stage's options. */
  readonly path: readonly (string | number)[];
  readonly name: string;
  /** The resource type it must be (`redis`, `mmdb`…). */
  readonly type: string;
}

// -------------------------------------------------------------------------------------- resources

/**
 * A client several stages share (a Redis connection, an MMDB reader, a database pool): declared once under
 * `spec.resources`, opened by the runtime before any stage is created, handed to stages by name through
 * `ctx.resource(name)`, closed after every stage.
 */
export interface ResourceDefinition<S extends OptionsSchema = OptionsSchema, O = unknown, T = unknown> {
  readonly kind: 'resource';
  readonly type: string;
  readonly stability: Stability;
  readonly summary: string;
  readonly schema: S;
  readonly examples: readonly O[];
  validate?(options: O): OptionProblem[];
  /** Opens the client; fails with a clear message when it cannot (an unreachable server fails the start). */
  open(options: O, ctx: ResourceContext): Promise<OpenResource<T>>;
}

export interface ResourceContext {
  readonly pipeline: string;
  /** The resource's name under `spec.resources`. */
  readonly name: string;
  readonly logger: Logger;
  /** The directory relative paths in options resolve against. */
  readonly baseDir: string;
  readonly signal: AbortSignal;
}

export interface OpenResource<T> {
  readonly client: T;
  /** Whether it works right now (for readiness); a message when it does not. */
  health?(): Promise<{ readonly ok: boolean; readonly detail?: string }>;
  /** Idempotent. */
  close(): Promise<void>;
}

export function defineResource<const S extends OptionsSchema, O, T>(
  def: Omit<ResourceDefinition<S, O, T>, 'kind'>,
): ResourceDefinition<S, O, T> {
  return { ...def, kind: 'resource' };
}

// ---------------------------------------------------------------------------------------- sources

export interface SourceContext extends OperatorContext {
  /** The position this source last checkpointed, or undefined on a first run. */
  readonly restoredPosition: unknown;
  /** Records per batch the source should aim for (pipeline setting). */
  readonly batchMaxRecords: number;
  /**
   * Where the partitions this source reads have their positions stored with the data (see "Partitioned
   * positions" below): set when exactly one sink downstream stores them (`Sink.claimPartitions`), undefined
   * otherwise (the source then resumes from what it knows itself: `restoredPosition`, or its broker).
   */
  readonly partitions?: PartitionStore;
}

// --------------------------------------------------------------------------- partitioned positions
//
// Several `etl` instances (each its own pipeline name and state directory) may share one partitioned input (a
// Kafka consumer group): the broker moves partitions between them. For exactly once into a sink that commits
// with its data, a partition's position must travel with the partition, not with the instance: it is stored per
// partition key, shared by every instance, in the data's own transaction, and read back by whichever instance is
// assigned the partition next.
// - On assignment the source claims its partitions (`SourceContext.partitions.claim`): the store gives each key
//   a new epoch, above every epoch handed out for it before, and returns the position committed with the data.
// - The source emits a `PartitionedPosition`: per key, the epoch it claimed and where to resume.
// - A committing sink's `commit` stores each key's position in the data's transaction, only if the key's stored
//   epoch is still the one in the position. Otherwise a newer owner has claimed it (the partition was revoked
//   from this instance): the transaction fails with ETL_PARTITION_FENCED, nothing of it is committed, and the run
//   fails; a restart claims again and resumes from the stored positions. So a revoked owner's late commit can
//   never write rows or positions of a partition a newer owner reads.
// - The source drops a revoked partition from its position once its last batch is durable (or abandoned).

/** A source position made of partitions (`SourceOutput.emit`'s position for a source that claims them). */
export interface PartitionedPosition {
  /** By partition key, as claimed: e.g. `kafka/<group>/<topic>/<partition>`, the same for every instance. */
  readonly partitions: Readonly<Record<string, PartitionPosition>>;
}

export interface PartitionPosition {
  /** The epoch the claim returned: the fencing token. */
  readonly epoch: number;
  /** Where a new owner resumes (JSON): a Kafka partition's next offset. */
  readonly position: unknown;
}

/** What a claim returns for one key. */
export interface PartitionClaim {
  readonly key: string;
  readonly epoch: number;
  /** The position committed with the data, or undefined when none was yet. */
  readonly position: unknown;
}

/** `SourceContext.partitions`. */
export interface PartitionStore {
  /** Claims `keys` for this instance, fencing off their previous owners. */
  claim(keys: readonly string[]): Promise<PartitionClaim[]>;
}

/** Whether a source's position is a `PartitionedPosition`. */
export function isPartitionedPosition(position: unknown): position is PartitionedPosition {
  if (typeof position !== 'object' || position === null) return false;
  const partitions = (position as { partitions?: unknown }).partitions;
  return typeof partitions === 'object' && partitions !== null && !Array.isArray(partitions);
}

/** Every partition entry of a snapshot's positions, over all its sources: what a committing sink stores. */
export function partitionEntries(
  positions: Readonly<Record<string, unknown>>,
): Array<{ readonly key: string } & PartitionPosition> {
  const entries: Array<{ readonly key: string } & PartitionPosition> = [];
  for (const position of Object.values(positions)) {
    if (!isPartitionedPosition(position)) continue;
    for (const [key, entry] of Object.entries(position.partitions)) {
      entries.push({ key, epoch: entry.epoch, position: entry.position });
    }
  }
  return entries;
}

export interface SourceOutput {
  /**
   * Sends a batch downstream: waits for credit (a permit for this batch; awaiting it is what makes a slow
   * sink slow the source), hands the batch on, and resolves. `position` is where a rerun must resume after
   * this batch (JSON-serialisable); it is recorded by the first checkpoint whose cut follows the batch, once
   * every sink downstream has acknowledged it. An empty batch (no records, no dead letters) only moves the position.
   */
  emit(records: EtlRecord[], position?: unknown, bytes?: number, batch?: BatchOptions): Promise<Emitted>;
  /** Aborted when the source must stop reading (shutdown requested, or the run is over). */
  readonly stopping: AbortSignal;
  /** Optional: progress of a finite source, for percent and ETA. */
  progress(doneBytes: number, totalBytes: number): void;
  /**
   * Called with this source's position each time a checkpoint holding it has committed: what a rerun will
   * resume from. A queue source commits its offsets back to the broker here, never earlier.
   */
  onCommitted(listener: (position: unknown) => void): void;
  /**
   * Reports an input the source could not read completely (a corrupt or cut compressed file, a file that
   * shrank while it was read), without failing the run: the other inputs go on. The runtime logs `reason`
   * at error level with `where`, counts it in the run's errors and in `etl_component_errors_total{phase="read"}`,
   * and `etl apply` exits 1 after a run with such errors. What was emitted of that input, and whether a
   * rerun reads it again, is the source's documented rule; the source does not log it again.
   */
  inputError(reason: string, where?: Omit<Origin, 'source'>): void;
}

/** What a source may tell of a batch besides its records (`emit`'s last argument). */
export interface BatchOptions {
  /**
   * W3C Trace Context the batch arrived with: the `traceparent` header of an HTTP request, or of a queue
   * message. The batch's trace continues it (the source's span becomes that parent's child, and the parent's
   * sampling decision holds) instead of starting a new one; a malformed value is ignored. One parent per
   * batch: a source whose records arrive with different parents emits them in separate batches. Costs
   * nothing when tracing is off.
   */
  readonly traceparent?: string;
  /** The `tracestate` header that came with `traceparent`, passed on unchanged. */
  readonly tracestate?: string;
  /**
   * Input the source could not turn into records (a malformed JSON line in a pushed body), as dead letters built
   * with `deadLetter(record, ctx.id, reason)`: they leave on the source's `dead_letter` port (which the source
   * declares in `outputs`) in the same delivery as the records, so `durable()` covers both.
   */
  readonly deadLetters?: readonly EtlRecord[];
}

/** What became of one `emit`. */
export interface Emitted {
  /** False when the batch was not sent because the source is stopping; it will be read again by a rerun. */
  readonly sent: boolean;
  /**
   * Resolves once the batch is durable: the checkpoint whose cut follows it has committed, so every sink
   * downstream holds its records (or their dead letters) for good, and a rerun resumes after it. Takes up to
   * one checkpoint interval. Rejects when the run ends first (failure, abort, or a stop before the final
   * checkpoint), and at once for a batch not sent. A push source answers its client on it. The promise is
   * made on the first call, so sources that never ask pay nothing.
   */
  durable(): Promise<void>;
}

export interface Source {
  /** Reads until the input is exhausted (finite sources) or `out.stopping` aborts. */
  run(out: SourceOutput): Promise<void>;
  /** Releases resources; idempotent, safe without `run`. */
  close?(): Promise<void>;
}

export interface SourceDefinition<S extends OptionsSchema = OptionsSchema, O = unknown> extends DefinitionBase<S, O> {
  readonly kind: 'source';
  /** Output ports and the record kind on each; `default` is the port named by the bare stage id. */
  readonly outputs: Readonly<Record<string, RecordKind>>;
  /** When the kinds depend on the options (e.g. parse of error logs), the ports for these options. */
  outputsFor?(options: O): Readonly<Record<string, RecordKind>>;
  /**
   * The JSON Schema of the records on each output port, with these options. A port left out (or a source that
   * declares nothing) carries records about which nothing is known: `{ type: 'object' }`.
   */
  outputSchemas?(options: O): Readonly<Record<string, RecordSchema>>;
  /**
   * The source may emit one object more than once, or keeps objects it emitted and reads them later: a
   * `changesRecords` stage downstream is then given copies (see `TransformDefinition.sharesRecords`).
   */
  readonly sharesRecords?: boolean;
  /**
   * True when, with these options, the source never ends by itself (it tails, listens or generates forever):
   * a stop request is then how its pipeline normally ends, and `etl apply` exits 0 for it. Default: false.
   */
  unbounded?(options: O): boolean;
  create(options: O, ctx: SourceContext): Source | Promise<Source>;
}

// ------------------------------------------------------------------------------------- transforms

/** Records per output port. Ports the stage did not declare are a programmer error. */
export type PortRecords = { [port: string]: EtlRecord[] };

export interface Transform {
  open?(): Promise<void>;
  /**
   * Turns one batch into records on output ports. May be async; the runtime keeps batches in order.
   * A record that cannot be processed goes to `dead_letter` on its own, with `deadLetter(record, id, reason)`.
   *
   * A `process` that throws is retried with the same batch (`on_error: retry`) or has the whole batch
   * dead-lettered: it must change no state before it can no longer fail (or undo it), so that a retry counts
   * nothing twice. Records are not changed in place unless the definition declares `changesRecords`.
   */
  process(records: EtlRecord[]): PortRecords | Promise<PortRecords>;
  /** Called once when all inputs have ended; emits what the stage still holds (every open window). */
  flush?(): PortRecords | Promise<PortRecords>;
  /**
   * Processing-time ticks, every `tickIntervalMs` (default 1000) while the stage runs, also when no record
   * arrives: windows close and entries expire on time in a pipeline that follows its input. Ticks come in
   * turn with batches (never during `process`), and what a tick emits is part of the next checkpoint like
   * any batch's records. `now` is the processing time, epoch milliseconds.
   */
  tick?(now: number): PortRecords | Promise<PortRecords>;
  readonly tickIntervalMs?: number;
  /**
   * State to checkpoint (JSON-serialisable), taken at the cut while the pipeline is drained; it is stored
   * inline in the state file, so keep it small (counters, a few open windows). Large state (a key per
   * client or session) belongs in `ctx.keyed()`, which the runtime checkpoints incrementally. Keyed changes
   * made here are part of this checkpoint: a transform may keep live values (sketches) in memory and `set` the
   * ones changed since the last cut only here, rather than at every record.
   */
  snapshot?(snapshot: Snapshot): unknown | Promise<unknown>;
  /**
   * Called after `open`, before any record, with the state `snapshot` returned for the checkpoint the run
   * resumes from: the one the sinks committed (undefined state and id on a first run). Keyed state is
   * restored by then. A transform keeping state outside the process (a Redis set) drops here what it wrote
   * for snapshots after `snapshotId`: a replay must find the state as it was at the committed cut.
   */
  restore?(state: unknown, snapshotId: number | undefined): void | Promise<void>;
  /**
   * For state outside the process, in two phases as sinks commit: phase one at each cut (make the writes
   * of snapshots up to this one durable), phase two once the checkpoint is recorded. Writes made while
   * processing belong to `ctx.snapshotId()`, the snapshot the records being processed will be part of.
   */
  prepareCommit?(snapshot: Snapshot): Promise<void>;
  commit?(snapshot: Snapshot): Promise<void>;
  /**
   * What the stage tells of the run, asked once when the run is over (after `flush` and the final checkpoint,
   * or after a failure): lines for the run summary (a data-quality share), and a `failure` when the run must
   * fail for it (a threshold not met). The runtime fails such a run with that message once everything was
   * delivered and checkpointed, so `etl apply` exits 1 without anything being lost or sent twice.
   */
  summarize?(): StageReport | undefined;
  close?(): Promise<void>;
}

/** A stage's account of its run (`Transform.summarize`). */
export interface StageReport {
  /** Lines for the summary: `99.62% valid (9,962 of 10,000)`, `ip_valid: 38 failed (dead_letter)`. */
  readonly lines: readonly string[];
  /** Why the run fails because of this stage, when it does: `99.62% valid, below min_valid_ratio 99.9%`. */
  readonly failure?: string;
  /** The same figures for machines, by name (`addresses_anonymized: 9962`): the run audit log records them. */
  readonly counts?: Readonly<Record<string, number>>;
}

export interface TransformDefinition<S extends OptionsSchema = OptionsSchema, O = unknown>
  extends DefinitionBase<S, O> {
  readonly kind: 'transform';
  /** Record kinds this stage can take on its inputs. */
  readonly accepts: readonly RecordKind[];
  /** When what it takes depends on the options, the kinds it takes with these options. */
  acceptsFor?(options: O): readonly RecordKind[];
  /**
   * `process` may run for several batches at once (`max_in_flight` > 1): its calls are independent (a
   * lookup over the network). Records still leave in the order batches came in. Default: one at a time.
   */
  readonly concurrent?: boolean;
  /**
   * What `process` returns depends only on the options and the batch: the transform keeps no state a batch
   * leaves for the next (caches that only save time aside), uses no keyed state, no shared resource and no
   * checkpoint, and has no `tick`, `flush`, `snapshot`, `restore`, `prepareCommit`, `commit` or `summarize`.
   * Such a stage may run on worker threads (the stage key `workers`, engine/runtime/workers/README.md): each
   * worker creates its own instance with the same options, and batches go to whichever is free. `etl validate`
   * refuses `workers` on a transform that does not declare it. Default: false.
   */
  readonly stateless?: boolean;
  /** When it depends on the options (a lookup over the network with a shared cache is not), for these options. */
  statelessFor?(options: O): boolean;
  /**
   * `process` changes the records it receives in place (adds or overwrites fields) and passes those same objects
   * on, instead of building new ones. The runtime then hands the stage objects nobody else sees: shallow copies
   * (`{ ...record }`, which keeps `ORIGIN`) on an edge whose records another stage may also hold (a port with several
   * readers, a producer that `sharesRecords`, anything upstream of it that does), the records themselves otherwise
   * (decided per edge when the run is wired, engine/runtime/ownership.ts). The changes must give the same result
   * when made twice: `on_error: retry` passes the same, possibly already changed, batch again, and a stage given its
   * own output must emit it unchanged (test/operators/record-schemas.test.ts holds every operator to it). A batch
   * that fails is dead-lettered as it is then, with what was changed of it. Applies to what `process` receives;
   * `tick` and `flush` build their own records. Default: false (records reach such a stage possibly shared).
   */
  readonly changesRecords?: boolean;
  /** When it depends on the options (validate changes records only with `flag` rules), for these options. */
  changesRecordsFor?(options: O): boolean;
  /**
   * The stage may emit one object on more than one port (threat_intel's `threats` are also on `default`), or more
   * than once, or keeps objects it emitted and reads them later: the runtime then never lets a `changesRecords`
   * stage downstream change them in place. Without it, every object the stage emits is on one port, once, and no
   * longer its own. Checked on every operator with its test inputs (test/operators/record-schemas.test.ts).
   */
  readonly sharesRecords?: boolean;
  /** Output ports (besides the implicit `dead_letter`) and their record kinds. */
  readonly outputs: Readonly<Record<string, RecordKind>>;
  /** When the kinds depend on the options (e.g. parse of error logs), the ports for these options. */
  outputsFor?(options: O): Readonly<Record<string, RecordKind>>;
  /**
   * The JSON Schema of the records on each output port, from the options and `input`, the schema of the records
   * reaching the stage (the union over its inputs; `{ type: 'object' }` when nothing is known of them). A
   * pass-through returns `{ default: input }`, an enrichment `{ default: withFields(input, { … }) }`
   * (engine/record-schema.ts). A port left out (or a transform that declares nothing) carries records about
   * which nothing is known; `dead_letter` always carries dead letters. A property test holds every declaring
   * operator to the records it really emits (test/operators/record-schemas.test.ts). `inputs`: the same per
   * input, with its record kind, when the graph pass knows them (it always does at `etl validate`).
   */
  outputSchemas?(
    options: O,
    input: RecordSchema,
    inputs?: readonly InputSchema[],
  ): Readonly<Record<string, RecordSchema>>;
  /**
   * Option values that name fields of the records the stage receives: the graph pass reports a name the schema
   * reaching the stage cannot carry, with the nearest one (when that schema is closed).
   */
  fields?(options: O): readonly FieldUse[];
  /**
   * This transform removes personal data from what it passes on, the dead letters it reads included
   * (`anonymize`): the graph pass warns when the `dead_letter` port of a stage upstream of it reaches a sink
   * without passing through such a stage, since those dead letters carry the original lines past it.
   */
  readonly protectsPersonalData?: boolean;
  /**
   * The fields of its `default` output that identify a row: the stage emits a row again, corrected, with the same
   * values in them (an aggregate's window and groups). The graph pass warns when a sink that keys what it stores
   * (`Sink.storeKey`) reads it without that key, or keeps the first row of a key instead of the last.
   */
  rowKey?(options: O): readonly string[];
  create(options: O, ctx: OperatorContext): Transform | Promise<Transform>;
}

// ------------------------------------------------------------------------------------------- sinks

/** A consistent cut of the pipeline: every batch emitted before it is acknowledged by every sink. */
export interface Snapshot {
  /** Increases by one per checkpoint of this pipeline. */
  readonly id: number;
  /** Source positions at the cut, by source id. */
  readonly positions: Readonly<Record<string, unknown>>;
}

/** What a sink committing in its own storage recorded with its data (`Sink.committedCheckpoint`). */
export interface CommittedCheckpoint {
  readonly id: number;
  /** `Snapshot.positions` of that snapshot, as stored (JSON). */
  readonly positions: Readonly<Record<string, unknown>>;
}

export interface SinkWriteContext {
  /** Routes one record to this sink's `dead_letter` port instead of failing the batch. */
  deadLetter(record: EtlRecord, reason: string): void;
  /**
   * With tracing on and the batch sampled: the W3C `traceparent` of this sink's span for the batch, for a sink
   * that carries the trace on to what it writes (a queue's message headers). Undefined otherwise.
   */
  readonly traceparent?: string;
}

export interface Sink {
  /**
   * For `etl apply --dry-run`: what `open` would change (e.g. DDL statements), without changing
   * anything. May connect to read the current state.
   */
  plan?(): Promise<string[]>;
  /** Connects, creates tables, etc. Called once, before any source starts. */
  open?(): Promise<void>;
  /**
   * Restores the sink to the state it reported at the checkpoint the run resumes from (a file sink
   * truncates what it wrote after it). Called after `open`, before any `write`; `state` is undefined on
   * a first run.
   */
  restore?(state: unknown, snapshotId: number | undefined): Promise<void>;
  /**
   * Writes one batch. Resolving acknowledges it: the sink has taken responsibility for the records
   * (they are durable, or will be made durable by `prepareCommit`). Rejecting with a retriable error
   * makes the runtime retry with backoff (`on_error: retry`, the default for sinks).
   *
   * All or nothing: a `write` that rejects must leave no trace of the batch (nothing gathered, nothing
   * on disk past what was there, no row in an open transaction), because a retry passes the same records
   * again and a dead-lettered batch must not also be stored. Records dead-lettered through `ctx` are part of
   * the outcome: a retry starts from the whole batch again.
   */
  write(records: EtlRecord[], ctx: SinkWriteContext): Promise<void> | void;
  /**
   * Called at the cut, before `prepareCommit`, by sinks that can take the next checkpoint's writes while
   * this one commits: every `write` after it belongs to the next snapshot and must not be made durable by
   * this one's `prepareCommit` and `commit`. When every sink that commits implements it, sources run on
   * during the commit instead of waiting for it; when they also have `committedCheckpoint`, the engine
   * records the checkpoint while they prepare, and keeps no state for them (`restore` gets undefined).
   */
  cut?(snapshot: Snapshot): void;
  /**
   * Phase one of a checkpoint: make everything written so far durable (flush, fsync) and return the
   * state a rerun must restore to. Without `cut`, the sink's next writes wait while this and `commit` run.
   *
   * Records found refused only now (a COPY that fails at a row when it ends, a bulk API's per-item answers
   * to writes that have returned) are dead-lettered through `ctx`, with the record as written: the runtime
   * keeps them in this checkpoint and sends them on the sink's `dead_letter` port once it has committed
   * (again after a crash, from the checkpoint), so they are stored exactly once like any other record.
   */
  prepareCommit?(snapshot: Snapshot, ctx: SinkWriteContext): Promise<unknown>;
  /** Phase two, after the engine has durably recorded the snapshot: commit (e.g. a database transaction). */
  commit?(snapshot: Snapshot): Promise<void>;
  /**
   * For sinks that commit in their own storage, with their data: the last snapshot they committed and the
   * positions `commit` was given with it. A rerun after a crash between the two phases resumes from the
   * right cut, and one that finds no state (a container without a persistent `data_dir`) resumes from these
   * positions when the sinks agree (state/resume.ts).
   */
  committedCheckpoint?(): Promise<CommittedCheckpoint | undefined>;
  /**
   * For a sink that stores partitioned positions with its data (see "Partitioned positions"): claims `keys` in
   * a transaction of its own, committed before it returns, and returns each key's new epoch and stored
   * position. Such a sink's `commit` stores `partitionEntries(snapshot.positions)` fenced by their epochs.
   */
  claimPartitions?(keys: readonly string[]): Promise<PartitionClaim[]>;
  /** Called after the last batch; flush buffers. */
  flush?(): Promise<void>;
  /** Releases resources; idempotent and safe without `open`. */
  close?(): Promise<void>;
}

export interface SinkDefinition<S extends OptionsSchema = OptionsSchema, O = unknown> extends DefinitionBase<S, O> {
  readonly kind: 'sink';
  readonly accepts: readonly RecordKind[];
  /** When what it takes depends on the options (a table's record schema), the kinds it takes with these. */
  acceptsFor?(options: O): readonly RecordKind[];
  /** How to make the sink take records of `kind` it refuses, for the error that says so. */
  acceptsHint?(kind: RecordKind): string | undefined;
  /**
   * `write` may run for several batches at once (`max_in_flight` > 1): writes are independent (bulk
   * requests). Batches are still acknowledged in the order they came in. Default: one at a time.
   */
  readonly concurrent?: boolean;
  /**
   * What the sink writes that no other sink may write during the same run, as URIs (`file:///abs/out.jsonl`);
   * relative paths resolve against `cwd`. Two sinks loaded together that claim the same one are refused.
   */
  writes?(options: O, cwd: string): readonly string[];
  /**
   * Option values that name fields of the records the sink receives: the graph pass reports a name the schema
   * reaching the stage cannot carry, with the nearest one (when that schema is closed).
   */
  fields?(options: O): readonly FieldUse[];
  /** Storage that answers SQL: `etl query` opens what a sink with these options writes to. */
  readonly query?: QueryableStorage<O>;
  /**
   * How the sink keys what it stores, with these options, for the graph pass's check of stages that emit rows
   * again (`rowKey`): the key's fields and where the options name them, or undefined when every record is stored
   * as a new row; `replaces`: a record with a stored key replaces the row (true) or is dropped (false).
   */
  storeKey?(
    options: O,
  ):
    | { readonly fields: readonly string[]; readonly path: readonly (string | number)[]; readonly replaces: boolean }
    | undefined;
  create(options: O, ctx: OperatorContext): Sink | Promise<Sink>;
}

export interface QueryableStorage<O = unknown> {
  /**
   * Opens the storage a sink with `options` writes to: the options of a pipeline's sink, or, without a
   * pipeline, only `url` when the user gave one. `dataDir` is the pipeline's (`.etl` without one). Refuses,
   * saying how to create it, storage that does not exist yet rather than creating it empty.
   */
  open(
    options: Partial<O>,
    where: { readonly dataDir: string; readonly env: NodeJS.ProcessEnv },
  ): Promise<QuerySession>;
}

export interface QuerySession {
  /** Where it runs, for messages: a URL with its password masked, or a directory. */
  readonly label: string;
  /** Runs one or more statements; the result of each, in order. */
  script(sql: string): Promise<QueryTable[]>;
  /** Idempotent. */
  close(): Promise<void>;
}

export interface QueryTable {
  /** The columns' names, in order; a name may repeat (`SELECT count(*), count(city)`). */
  readonly fields: readonly string[];
  /** Each row's values in the order of `fields`; 64-bit integers as bigint, whatever the driver returns them as. */
  readonly rows: ReadonlyArray<readonly unknown[]>;
  /** The statement's command tag (`INSERT`, `CREATE TABLE`), for statements without rows. */
  readonly command?: string;
  readonly rowCount?: number;
}

export type OperatorDefinition =
  | SourceDefinition<OptionsSchema, unknown>
  | TransformDefinition<OptionsSchema, unknown>
  | SinkDefinition<OptionsSchema, unknown>;

export function defineSource<const S extends OptionsSchema, O>(
  def: Omit<SourceDefinition<S, O>, 'kind'>,
): SourceDefinition<S, O> {
  return { ...def, kind: 'source' };
}
export function defineTransform<const S extends OptionsSchema, O>(
  def: Omit<TransformDefinition<S, O>, 'kind'>,
): TransformDefinition<S, O> {
  return { ...def, kind: 'transform' };
}
export function defineSink<const S extends OptionsSchema, O>(
  def: Omit<SinkDefinition<S, O>, 'kind'>,
): SinkDefinition<S, O> {
  return { ...def, kind: 'sink' };
}
