/** The `postgres` sink: wires layout, encoder, partitions and the load transaction into the Sink contract. */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import type {
  CommittedCheckpoint,
  OperatorContext,
  PartitionClaim,
  Sink,
  SinkWriteContext,
  Snapshot,
} from '../../../engine/operator.ts';
import { EtlError } from '../../../engine/errors.ts';
import { type EtlRecord, ORIGIN, type Origin } from '../../../engine/record.ts';
import { EMPTY_STATE, inspect, planTable, type TableLayout, type TableState } from './ddl.ts';
import {
  type ConnectOptions,
  type CopyFormat,
  type Database,
  type DatabaseTarget,
  openDatabase,
  resolveTarget,
  type Session,
  targetLabel,
} from './driver.ts';
import { SinkLock } from './advisory-lock.ts';
import { type RowBuffer, RowEncoder } from './encoder.ts';
import { buildLayout, copyTargetOf, stagingOf } from './layout.ts';
import { LOCK_WAIT_TIMING, type LockWaitTiming } from './lock-wait.ts';
import { Loader } from './loader.ts';
import { PartitionManager } from './partitions.ts';
import { PartitionPositions } from './partition-positions.ts';
import type { PostgresSinkOptions } from './schema.ts';
import { parseRetention } from './time.ts';

export interface PostgresSinkDeps {
  /** The clock partitions and retention follow (tests move it). */
  readonly now?: () => number;
  readonly env?: NodeJS.ProcessEnv;
  /** Opens the database (tests wrap it to inject faults). */
  readonly openDatabase?: (target: DatabaseTarget, options: ConnectOptions) => Promise<Database>;
  /** When a load waiting on a lock is first reported, and how often again (default 5 s, 30 s). */
  readonly lockWaitNoticeMs?: number;
  readonly lockWaitRepeatMs?: number;
}

const HOUR_MS = 3_600_000;

export function createPostgresSink(
  options: PostgresSinkOptions,
  ctx: OperatorContext,
  deps: PostgresSinkDeps = {},
): Sink {
  return new PostgresSink(options, ctx, deps);
}

class PostgresSink implements Sink {
  private readonly options: PostgresSinkOptions;
  private readonly ctx: OperatorContext;
  private readonly now: () => number;
  private readonly openDatabase: (target: DatabaseTarget, options: ConnectOptions) => Promise<Database>;
  private readonly lockWait: LockWaitTiming;
  private readonly target: DatabaseTarget;
  private readonly layout: TableLayout;
  /** Replaced by a text one at `open` when binary cannot be used (a column of another type in the table). */
  private encoder: RowEncoder;
  /** Where the rows of batches are encoded (`take` hands out each batch). */
  private rows: RowBuffer;
  private readonly partitions: PartitionManager | undefined;
  /** `origin_columns` as [column, origin property] pairs. */
  private readonly originColumns: ReadonlyArray<readonly [string, keyof Origin]>;
  private database: Database | undefined;
  private loader: Loader | undefined;
  /** Positions of the input partitions this sink claimed, stored with the rows (engine/operator.ts). */
  private partitionPositions: PartitionPositions | undefined;
  private closed = false;

  constructor(options: PostgresSinkOptions, ctx: OperatorContext, deps: PostgresSinkDeps) {
    this.options = options;
    this.ctx = ctx;
    this.now = deps.now ?? Date.now;
    this.openDatabase = deps.openDatabase ?? openDatabase;
    this.lockWait = {
      noticeAfterMs: deps.lockWaitNoticeMs ?? LOCK_WAIT_TIMING.noticeAfterMs,
      repeatMs: deps.lockWaitRepeatMs ?? LOCK_WAIT_TIMING.repeatMs,
    };
    this.target = resolveTarget(options.url, ctx.dataDir, deps.env);
    this.layout = buildLayout(options, ctx.inputSchema);
    this.originColumns = Object.entries(options.origin_columns).map(([c, p]) => [c, p as keyof Origin] as const);
    this.encoder = new RowEncoder(
      this.layout.columns,
      options.extra_column,
      this.layout.timeColumn,
      copyFormat(options.copy_format, this.target),
    );
    this.rows = this.encoder.buffer();
    const { granularity, timeColumn } = this.layout;
    this.partitions =
      granularity && timeColumn
        ? new PartitionManager({
            schema: options.schema,
            table: options.table,
            timeColumn,
            granularity,
            premake: options.partition_premake,
            futureLimitMs: options.future_partition_limit_hours * HOUR_MS,
            pastLimitMs: options.past_partition_limit_days * 24 * HOUR_MS,
            retentionMs: options.retention === undefined ? undefined : parseRetention(options.retention),
          })
        : undefined;
  }

  async plan(): Promise<string[]> {
    // A dry run must not create the embedded database just to say it would.
    if (this.target.kind === 'embedded' && !existsSync(this.target.dir)) {
      return this.planFor({ ...EMPTY_STATE, schemaExists: this.options.schema === 'public' });
    }
    const database = await this.openDatabase(this.target, this.connectOptions());
    try {
      const session = await database.session();
      try {
        return this.planFor(await inspect(session, this.options.schema, this.options.table));
      } finally {
        session.release();
      }
    } finally {
      await database.close();
    }
  }

  async open(): Promise<void> {
    const database = await this.openDatabase(this.target, this.connectOptions());
    this.database = database;
    const partitionPositions = new PartitionPositions(database, this.options.schema);
    this.partitionPositions = partitionPositions;
    const loader = new Loader({
      database,
      schema: this.options.schema,
      copyTarget: copyTargetOf(this.layout),
      staging: stagingOf(this.layout, this.options.on_conflict),
      partitions: this.partitions,
      pipeline: this.ctx.pipeline,
      sinkId: this.ctx.id,
      maxUncommittedBytes: this.options.max_uncommitted_bytes,
      initialBackoffMs: this.options.reconnect_initial_backoff_ms,
      maxBackoffMs: this.options.reconnect_max_backoff_ms,
      maxOutageMs: this.options.max_outage_seconds === undefined ? undefined : this.options.max_outage_seconds * 1000,
      waitForServerMs: this.options.wait_for_server_seconds * 1000,
      logger: this.ctx.logger,
      metrics: this.ctx.metrics,
      signals: this.ctx.signals,
      signal: this.ctx.signal,
      now: this.now,
      requestCheckpoint: () => this.ctx.requestCheckpoint(),
      format: () => this.encoder.format,
      decode: (row) => this.encoder.decodeRow(row),
      lock:
        database.kind === 'server'
          ? new SinkLock({
              schema: this.options.schema,
              pipeline: this.ctx.pipeline,
              sink: this.ctx.id,
              label: database.label,
              ...(this.ctx.waitForLocks === undefined ? {} : { wait: this.ctx.waitForLocks }),
              onWait: (holder) =>
                this.ctx.logger.warn(
                  `waiting for another run of pipeline ${this.ctx.pipeline} to release postgres sink ${this.ctx.id} ` +
                    `on PostgreSQL (${database.label}): ${holder}`,
                ),
            })
          : undefined,
      // The lookup needs a connection besides the loading one; the embedded database has no other sessions.
      lockWait: database.kind === 'server' && this.options.pool_max_connections >= 2 ? this.lockWait : undefined,
      beforeCommit: (session, snapshot) => partitionPositions.store(session, snapshot),
    });
    this.loader = loader;
    // Several runs (scaled-out instances) may open the same new table at once: its DDL is serialised on the
    // server, each planning from what the catalog holds once it has the lock.
    const ddlLock = async (session: Session): Promise<void> => {
      if (database.kind !== 'server') return;
      await session.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`etl-ddl:${this.tableName()}`]);
    };
    await loader.run(async (session) => {
      let state = EMPTY_STATE;
      let statements: string[] = [];
      await inTransaction(session, async () => {
        await ddlLock(session);
        state = await inspect(session, this.options.schema, this.options.table);
        const plan = planTable(this.layout, state);
        for (const warning of plan.warnings) this.ctx.logger.warn(warning, { table: this.tableName() });
        if (plan.retyped.length > 0 && this.encoder.format === 'binary') this.useText(plan.retyped);
        statements = plan.statements;
        for (const sql of statements) await session.query(sql);
      });
      if (statements.length > 0) {
        this.ctx.logger.info('table ready', {
          table: this.tableName(),
          database: database.label,
          ddl: statements.length,
        });
      }
      const partitions = this.partitions;
      if (!partitions) return;
      partitions.rolledBack(); // a retry after a lost connection starts from what the catalog says
      const after = state.relkind === undefined ? EMPTY_STATE : state;
      partitions.load(after.partitions);
      await inTransaction(session, async () => {
        await ddlLock(session);
        await partitions.maintain(session, this.now());
      });
      partitions.committed();
    });
  }

  async write(records: EtlRecord[], ctx: SinkWriteContext): Promise<void> {
    const loader = this.requireLoader();
    const encoder = this.encoder;
    const partitions = this.partitions;
    const out = this.rows;
    const origins: Array<Origin | undefined> = [];
    const fromOrigin = this.originColumns;
    for (let i = 0; i < records.length; i++) {
      const given = records[i] as EtlRecord;
      const record = fromOrigin.length === 0 ? given : withOriginColumns(given, fromOrigin);
      if (!encoder.encodeInto(record, out)) {
        ctx.deadLetter(record, encoder.reason);
        continue;
      }
      const time = encoder.time;
      if (partitions !== undefined && !Number.isNaN(time)) partitions.note(time);
      origins.push(record[ORIGIN]);
    }
    const bytes = out.take();
    if (origins.length === 0) return;
    await loader.load({ bytes, origins }, ctx);
  }

  cut(_snapshot: Snapshot): void {
    this.requireLoader().cut();
  }

  async prepareCommit(_snapshot: Snapshot, ctx: SinkWriteContext): Promise<unknown> {
    const loader = this.requireLoader();
    await loader.idle();
    // Rows refused once their batch's write had returned: dead letters of this checkpoint, sent on the sink's
    // dead_letter port once it committed.
    for (const { record, reason } of loader.takeRefused()) ctx.deadLetter(record, reason);
    return undefined;
  }

  commit(snapshot: Snapshot): Promise<void> {
    return this.requireLoader().commit(snapshot);
  }

  committedCheckpoint(): Promise<CommittedCheckpoint | undefined> {
    return this.requireLoader().committedCheckpoint();
  }

  claimPartitions(keys: readonly string[]): Promise<PartitionClaim[]> {
    const positions = this.partitionPositions;
    if (!positions) throw new Error(`postgres sink ${this.ctx.id} used before open (${targetLabel(this.target)})`);
    if (this.database?.kind === 'server' && this.options.pool_max_connections < 2) {
      // The load transaction keeps its connection: a claim needs a second one, committed on its own.
      throw new EtlError(
        'ETL_CFG_INVALID',
        `postgres sink ${this.ctx.id}: storing partition positions needs pool_max_connections of 2 or more`,
      );
    }
    return positions.claim(keys);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.loader?.close();
    } finally {
      await this.database?.close();
    }
  }

  /**
   * Binary COPY needs each value in its column's own type (an int4 for a smallint column is refused), and the
   * encoder writes the layout's types: with columns of other types in the table, rows go as text, which the
   * server converts.
   */
  private useText(retyped: readonly string[]): void {
    this.ctx.logger.info(`columns of other types than the layout's (${retyped.join(', ')}): COPY in text format`, {
      table: this.tableName(),
    });
    this.encoder = new RowEncoder(this.layout.columns, this.options.extra_column, this.layout.timeColumn, 'text');
    this.rows = this.encoder.buffer();
  }

  /** The DDL `open` would run, as statements ready to paste into psql. */
  private planFor(state: TableState): string[] {
    const { statements } = planTable(this.layout, state);
    const partitions = this.partitions;
    if (partitions) {
      partitions.load(state.partitions);
      statements.push(...partitions.plan(this.now()));
    }
    return statements.map((sql) => (sql.trimEnd().endsWith(';') ? sql : `${sql};`));
  }

  private connectOptions(): ConnectOptions {
    return {
      poolMaxConnections: this.options.pool_max_connections,
      connectTimeoutMs: this.options.connect_timeout_seconds * 1000,
      applicationName: applicationName(this.ctx.pipeline, this.ctx.id),
    };
  }

  private requireLoader(): Loader {
    if (!this.loader) throw new Error(`postgres sink ${this.ctx.id} used before open (${targetLabel(this.target)})`);
    return this.loader;
  }

  private tableName(): string {
    return `${this.options.schema}.${this.options.table}`;
  }
}

/**
 * `etl <pipeline>/<sink> pid <pid>@<host>`, as pg_stat_activity shows the sink's connections (a URL's own
 * application_name wins): who holds a lock is recognisable. PostgreSQL keeps 63 bytes: the names are cut first.
 */
function applicationName(pipeline: string, sink: string): string {
  const holder = ` pid ${process.pid}@${hostname()}`;
  const names = `etl ${pipeline}/${sink}`;
  return names.length + holder.length <= 63
    ? names + holder
    : `${names.slice(0, Math.max(16, 63 - holder.length))}${holder}`.slice(0, 63);
}

/**
 * The COPY format of a run: as asked; `auto` is binary into the embedded database (its COPY parses text in
 * WebAssembly, the load's slow side) and text to a server (see the README).
 */
function copyFormat(option: PostgresSinkOptions['copy_format'], target: DatabaseTarget): CopyFormat {
  if (option !== 'auto') return option;
  return target.kind === 'embedded' ? 'binary' : 'text';
}

/** A copy of `record` with its origin columns filled (absent origin properties stay NULL). */
function withOriginColumns(record: EtlRecord, columns: ReadonlyArray<readonly [string, keyof Origin]>): EtlRecord {
  const origin = record[ORIGIN];
  const out: EtlRecord = { ...record };
  for (const [column, property] of columns) out[column] = origin?.[property] ?? null;
  return out;
}

async function inTransaction(session: Session, fn: () => Promise<void>): Promise<void> {
  await session.query('BEGIN');
  try {
    await fn();
    await session.query('COMMIT');
  } catch (error) {
    await session.query('ROLLBACK').catch(() => {});
    throw error;
  }
}
