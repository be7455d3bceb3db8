/**
 * The load transaction. Rows stream into one open transaction through one COPY that stays open between
 * checkpoints (ended only for partition DDL and at the checkpoint), and become visible only when `commit`
 * upserts the checkpoint row and commits, so rows and checkpoint are atomic. Because a batch is
 * acknowledged before that commit, the encoded rows since the last commit are kept: after a connection
 * loss the loader reconnects (exponential backoff with full jitter, waiting out an outage while the
 * pipeline stalls behind it) and replays them into a new transaction, so nothing acknowledged is lost.
 * A row the server refuses aborts the transaction: the kept rows are loaded again chunk by chunk under
 * savepoints, the refused ones set aside with the server's reason.
 */
import { EtlError, errorMessage } from '../../../engine/errors.ts';
import type {
  CommittedCheckpoint,
  Logger,
  OperatorMetrics,
  StageSignals,
  SinkWriteContext,
  Snapshot,
} from '../../../engine/operator.ts';
import { type EtlRecord, ORIGIN, type Origin } from '../../../engine/record.ts';
import { retry } from '../../../engine/retry.ts';
import { CHECKPOINT_TABLE, qualified } from './ddl.ts';
import { splitBinaryRows } from './binary-buffer.ts';
import { type CopyFormat, type CopyWriter, copyAll, type Database, type Session } from './driver.ts';
import { isConnectionLoss, isDataError } from './faults.ts';
import { type LockWaitTiming, LockWaitWatch } from './lock-wait.ts';
import type { PartitionManager } from './partitions.ts';

export interface StagingSpec {
  /** Temporary table rows are copied into before INSERT … ON CONFLICT. */
  readonly table: string;
  /** Creates the staging table in the session (idempotent). */
  readonly create: string;
  /** Moves the staged rows into the target; its row count is the number stored. */
  readonly move: string;
}

export interface LoaderConfig {
  readonly database: Database;
  readonly schema: string;
  /** `"schema"."table" ("a", "b", …)` */
  readonly copyTarget: string;
  readonly staging: StagingSpec | undefined;
  readonly partitions: PartitionManager | undefined;
  readonly pipeline: string;
  readonly sinkId: string;
  readonly maxUncommittedBytes: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  /** undefined: wait for the database as long as it takes. */
  readonly maxOutageMs: number | undefined;
  /** How long to wait for a server never reached yet: 0 fails at once. */
  readonly waitForServerMs: number;
  readonly logger: Logger;
  readonly metrics: OperatorMetrics;
  /** The runtime's etl_sink_reconnects_total and etl_sink_circuit_state. */
  readonly signals?: StageSignals | undefined;
  readonly signal: AbortSignal;
  readonly now: () => number;
  /** Asks the runtime for a checkpoint soon (the uncommitted payload is large). */
  readonly requestCheckpoint: () => void;
  /** How rows are encoded: COPY text or binary (settled once the table is known, see postgres.ts). */
  readonly format: () => CopyFormat;
  /** The record a COPY row stands for (dead letters of rows the server refused). */
  readonly decode: (row: Buffer) => EtlRecord;
  /** Held on the loading session, taken on each new connection (a server's advisory lock: advisory-lock.ts). */
  readonly lock?: SessionLock;
  /** When to say what a call waits for when it waits on a lock (lock-wait.ts); undefined: never. */
  readonly lockWait?: LockWaitTiming;
  /** Runs in the load transaction before the checkpoint row and COMMIT (partition positions, fenced). */
  readonly beforeCommit?: (session: Session, snapshot: Snapshot) => Promise<void>;
}

/** A lock held by the loading session: taken when it connects, let go of at close. */
export interface SessionLock {
  take(session: Session): Promise<void>;
  release(session: Session): Promise<void>;
}

/** One batch as loaded: its rows in the loader's COPY format and, row by row, where each came from. */
export interface Chunk {
  readonly bytes: Buffer;
  readonly origins: ReadonlyArray<Origin | undefined>;
}

export interface Refused {
  readonly record: EtlRecord;
  readonly reason: string;
}

export class Loader {
  private readonly cfg: LoaderConfig;
  private session: Session | undefined;
  /** `open`: a transaction is running; `aborted`: it failed and must be rolled back and replayed. */
  private txn: 'none' | 'open' | 'aborted' = 'none';
  /** Every chunk loaded since the last commit, in order: what a new transaction replays. */
  private uncommitted: Chunk[] = [];
  private uncommittedBytes = 0;
  /** Partitions a lost transaction had created, to recreate before its rows are replayed. */
  private lostPartitions: number[] = [];
  private tail: Promise<unknown> = Promise.resolve();
  /** The COPY open in the transaction; rows of later batches join it until it is ended. */
  private copy: CopyWriter | undefined;
  /**
   * Between a checkpoint's cut and its commit, chunks of the next snapshot wait here (the connection is
   * busy committing); they go into the next transaction once the commit is done.
   */
  private deferred: Chunk[] | undefined;
  private deferredBytes = 0;
  /** Resolves when the deferred chunks may go to the connection again. */
  private commitDone: Promise<void> = Promise.resolve();
  private markCommitDone: () => void = () => {};
  /** Loading chunks that had waited for a commit failed: every later call fails with it. */
  private failure: unknown;
  /**
   * Rows the server refused with no batch being written to dead-letter them with (they surfaced while the
   * checkpoint settled the COPY, or among chunks loaded after a commit): handed to the checkpoint's phase one
   * (`takeRefused`), which dead-letters them late.
   */
  private refused: Refused[] = [];
  private readonly copyTable: string;
  private readonly closing = new AbortController();
  /** A connection was made once: from then on a lost server is waited for. */
  private reached = false;
  private readonly signal: AbortSignal;
  private readonly checkpointUpsert: string;
  private readonly checkpointSelect: string;
  private readonly reconnects: { inc(value?: number): void };
  private readonly duplicates: { inc(value?: number): void };
  private readonly outage: { set(value: number): void };
  private readonly pendingBytes: { set(value: number): void };
  private readonly lockWait: LockWaitWatch | undefined;

  constructor(cfg: LoaderConfig) {
    this.cfg = cfg;
    this.lockWait = cfg.lockWait && new LockWaitWatch(cfg.database, cfg.logger, cfg.lockWait, () => this.session?.pid);
    this.signal = AbortSignal.any([cfg.signal, this.closing.signal]);
    this.copyTable = cfg.staging?.table ?? cfg.copyTarget;
    const table = qualified(cfg.schema, CHECKPOINT_TABLE);
    this.checkpointUpsert =
      `INSERT INTO ${table} (pipeline, sink, snapshot_id, positions, committed_at) VALUES ($1, $2, $3, $4::jsonb, now()) ` +
      'ON CONFLICT (pipeline, sink) DO UPDATE SET snapshot_id = EXCLUDED.snapshot_id, positions = EXCLUDED.positions, ' +
      'committed_at = EXCLUDED.committed_at';
    this.checkpointSelect = `SELECT snapshot_id::text AS id, positions FROM ${table} WHERE pipeline = $1 AND sink = $2`;
    this.reconnects = cfg.metrics.counter('etl_postgres_reconnects_total', 'Reconnections after a lost connection');
    this.duplicates = cfg.metrics.counter(
      'etl_postgres_duplicate_rows_total',
      'Rows skipped by ON CONFLICT DO NOTHING',
    );
    this.outage = cfg.metrics.gauge('etl_postgres_circuit_open', '1 while PostgreSQL is unreachable and loading waits');
    this.pendingBytes = cfg.metrics.gauge(
      'etl_postgres_uncommitted_bytes',
      'Encoded bytes loaded since the last commit',
    );
  }

  /** Runs `op` (DDL, lookups) on the loader's session once the open COPY has ended, with reconnection. */
  run<T>(op: (session: Session) => Promise<T>): Promise<T> {
    return this.serial(async () => {
      await this.endCopy(undefined);
      return this.recovering(async () => op(await this.connect()));
    });
  }

  /**
   * Loads a chunk into the open transaction's COPY. It waits only while the connection's buffer is full,
   * so encoding the next batch overlaps the server's work on this one. A row the server refuses is
   * dead-lettered with whichever batch is being written when the refusal is known.
   */
  async load(chunk: Chunk, ctx: SinkWriteContext): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (this.deferred) {
      this.deferred.push(chunk);
      this.deferredBytes += chunk.bytes.length;
      // Bounded: beyond this much, wait for the commit like any slow sink.
      if (this.deferredBytes >= Math.min(MAX_DEFERRED_BYTES, this.cfg.maxUncommittedBytes)) await this.commitDone;
      return;
    }
    return this.serial(() => this.loadNow(chunk, ctx));
  }

  private async loadNow(chunk: Chunk, ctx: SinkWriteContext | undefined): Promise<void> {
    if (this.cfg.database.shared && this.txn === 'none') {
      // Other sinks share the one backend: a transaction open until the checkpoint would hold it from them,
      // and their writes (which the checkpoint waits for) behind it. The rows wait here, as they would for a
      // replay, and go in with the commit.
      this.uncommitted.push(chunk);
      this.uncommittedBytes += chunk.bytes.length;
      this.pendingBytes.set(this.uncommittedBytes);
      if (this.uncommittedBytes >= this.cfg.maxUncommittedBytes) this.cfg.requestCheckpoint();
      return;
    }
    // Partitions are created by DDL, which cannot run while a COPY is open on the connection.
    if (this.cfg.partitions?.pending) await this.endCopy(ctx);
    const writer = await this.openCopy(ctx);
    this.uncommitted.push(chunk);
    this.uncommittedBytes += chunk.bytes.length;
    this.pendingBytes.set(this.uncommittedBytes);
    try {
      await writer.write(chunk.bytes);
    } catch (error) {
      // The chunk is in `uncommitted`: recovery loads it with the rest.
      await this.recover(error, ctx);
    }
    if (this.uncommittedBytes >= this.cfg.maxUncommittedBytes) this.cfg.requestCheckpoint();
  }

  /** Chunks loaded from now on belong to the next transaction: they wait until `commit` is done. */
  cut(): void {
    if (this.deferred) return;
    this.deferred = [];
    this.deferredBytes = 0;
    this.commitDone = new Promise((resolve) => {
      this.markCommitDone = resolve;
    });
  }

  /** Upserts the checkpoint row and commits, atomically with every row loaded since the last commit. */
  async commit(snapshot: Snapshot): Promise<void> {
    let committed = false;
    try {
      await this.commitCut(snapshot);
      committed = true;
    } finally {
      this.releaseDeferred(committed);
    }
  }

  /**
   * After the commit, the chunks that waited for it go to the connection, in order, ahead of any later
   * load. After a failed commit the run is failing: they are dropped, as uncommitted rows are.
   */
  private releaseDeferred(committed: boolean): void {
    const chunks = this.deferred;
    if (!chunks) return;
    this.deferred = undefined;
    this.deferredBytes = 0;
    this.markCommitDone();
    if (!committed || chunks.length === 0) return;
    // Their write calls have returned: a row the server refuses among them is dead-lettered at the next
    // checkpoint, and a failure fails the next call (their rows must not go missing from a later commit).
    this.serial(async () => {
      for (const chunk of chunks) await this.loadNow(chunk, undefined);
    }).catch((error: unknown) => {
      this.failure ??= error;
    });
  }

  private commitCut(snapshot: Snapshot): Promise<void> {
    return this.serial(async () => {
      await this.endCopy(undefined);
      await this.transaction(undefined);
      const params = [this.cfg.pipeline, this.cfg.sinkId, snapshot.id, JSON.stringify(snapshot.positions)];
      let commitSent = false;
      await this.recovering(async () => {
        if (commitSent) {
          // The COMMIT went out but its answer was lost: the checkpoint row tells whether it happened.
          commitSent = false;
          if ((await this.readCheckpoint(await this.connect()))?.id === snapshot.id) return;
          this.cfg.logger.warn('commit was lost with the connection; replaying it', { snapshot: snapshot.id });
        }
        const session = await this.begin();
        await this.cfg.beforeCommit?.(session, snapshot);
        await session.query(this.checkpointUpsert, params);
        commitSent = true;
        const result = await session.query('COMMIT');
        commitSent = false;
        if (result.command === 'ROLLBACK') throw new Error('PostgreSQL rolled the load transaction back at COMMIT');
      });
      this.txn = 'none';
      this.uncommitted = [];
      this.uncommittedBytes = 0;
      this.lostPartitions = [];
      this.pendingBytes.set(0);
      this.cfg.partitions?.committed();
    });
  }

  /** The last snapshot committed with this sink's rows and its positions, from the checkpoint table. */
  committedCheckpoint(): Promise<CommittedCheckpoint | undefined> {
    return this.run((session) => this.readCheckpoint(session));
  }

  /** Waits until the server holds every row loaded so far (the open COPY ended). */
  idle(): Promise<void> {
    return this.serial(() => this.endCopy(undefined));
  }

  /** The rows refused since the last call that no batch's write could dead-letter: for the checkpoint. */
  takeRefused(): Refused[] {
    const refused = this.refused;
    this.refused = [];
    return refused;
  }

  /** Rolls back what was never committed and releases the connection. Idempotent. */
  async close(): Promise<void> {
    this.closing.abort(new EtlError('ETL_RUN_ABORTED', 'postgres sink closed'));
    this.releaseDeferred(false);
    await this.tail.catch(() => {});
    this.lockWait?.end();
    const copying = this.copy !== undefined;
    this.copy = undefined;
    const session = this.session;
    this.session = undefined;
    if (!session) return;
    // A connection in the middle of a COPY cannot take a ROLLBACK: closing it rolls back (and lets go of the lock).
    if (!copying) {
      if (this.txn !== 'none') await session.query('ROLLBACK').catch(() => {});
      // At once, rather than when the server sees the connection go: a next run may start right away.
      await this.cfg.lock?.release(session).catch(() => {});
    }
    this.txn = 'none';
    session.release(true);
  }

  // ----------------------------------------------------------------------------------- internals

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.failure !== undefined) throw this.failure;
      this.lockWait?.begin();
      try {
        return await fn();
      } finally {
        this.lockWait?.end();
      }
    };
    const next = this.tail.then(run, run);
    this.tail = next.catch(() => {});
    return next;
  }

  private async connect(): Promise<Session> {
    if (this.session?.broken) {
      this.cfg.logger.warn(`lost the connection to PostgreSQL (${this.cfg.database.label}); reconnecting`);
      this.dropSession();
    }
    if (this.session) return this.session;
    const session = await this.cfg.database.session();
    this.reached = true;
    try {
      await this.cfg.lock?.take(session);
    } catch (error) {
      session.release(true);
      throw error;
    }
    this.session = session;
    return session;
  }

  /** The COPY rows go into; starts the transaction (and creates noted partitions) first when needed. */
  private async openCopy(ctx: SinkWriteContext | undefined): Promise<CopyWriter> {
    if (this.copy) return this.copy;
    let session = await this.transaction(ctx);
    const partitions = this.cfg.partitions;
    if (partitions?.pending) {
      session = await this.recovering(async () => {
        const s = await this.begin();
        await partitions.createNeeded(s);
        return s;
      });
    }
    this.copy = session.copyIn(this.copyTable, this.cfg.format());
    return this.copy;
  }

  /** Ends the open COPY, so that the server holds its rows (moved into the target when staged). */
  private async endCopy(ctx: SinkWriteContext | undefined): Promise<void> {
    const writer = this.copy;
    if (!writer) return;
    this.copy = undefined;
    try {
      const copied = await writer.end();
      if (this.cfg.staging && this.session) await this.move(this.session, copied);
    } catch (error) {
      await this.recover(error, ctx);
    }
  }

  /**
   * The open transaction, begun (and replayed) with reconnection when there is none. A replay that meets
   * a row the server refuses loads the rows again under savepoints instead.
   */
  private async transaction(ctx: SinkWriteContext | undefined): Promise<Session> {
    try {
      return await this.recovering(() => this.begin());
    } catch (error) {
      if (!isDataError(error)) throw error;
      return this.isolate(error, ctx);
    }
  }

  /** The COPY (or its staging move) failed: reconnect and replay, or set refused rows aside. */
  private async recover(error: unknown, ctx: SinkWriteContext | undefined): Promise<void> {
    this.copy = undefined;
    if (isDataError(error)) {
      await this.isolate(error, ctx);
      return;
    }
    if (!isConnectionLoss(error) && !this.session?.broken) {
      if (this.txn === 'open') this.txn = 'aborted';
      throw error;
    }
    this.dropSession();
    await this.transaction(ctx);
  }

  /** The open transaction; begins one (maintenance, lost partitions, replay) when there is none. */
  private async begin(replay = true): Promise<Session> {
    const session = await this.connect();
    if (this.txn === 'open') return session;
    if (this.txn === 'aborted') {
      await session.query('ROLLBACK');
      this.txn = 'none';
      this.forgetTransaction();
    }
    await session.query('BEGIN');
    this.txn = 'open';
    if (this.cfg.staging) await session.query(this.cfg.staging.create);
    const partitions = this.cfg.partitions;
    if (partitions) {
      await partitions.maintain(session, this.cfg.now());
      await partitions.recreate(session, this.lostPartitions);
      // Rows held for the commit (a shared database) may need partitions no transaction has made yet.
      if (partitions.pending && this.uncommitted.length > 0) await partitions.createNeeded(session);
    }
    if (replay && this.uncommitted.length > 0) {
      if (!this.cfg.database.shared) {
        this.cfg.logger.info('replaying rows not yet committed', { bytes: this.uncommittedBytes });
      }
      await this.copyChunks(
        session,
        this.uncommitted.map((c) => c.bytes),
      );
    }
    return session;
  }

  /** One COPY of `chunks`, moved into the target when staged. */
  private async copyChunks(session: Session, chunks: readonly Uint8Array[]): Promise<void> {
    const copied = await copyAll(session, this.copyTable, chunks, this.cfg.format());
    if (this.cfg.staging) await this.move(session, copied);
  }

  private async move(session: Session, copied: number): Promise<void> {
    const moved = await session.query((this.cfg.staging as StagingSpec).move);
    const skipped = copied - (moved.rowCount ?? copied);
    if (skipped > 0) this.duplicates.inc(skipped);
  }

  /**
   * PostgreSQL refused a row the encoder let through, and the transaction is aborted: load every chunk
   * since the last commit again, each under a savepoint, taking out the rows the server refuses (found by
   * the line its error names, else by halving), and dead-letter them.
   */
  private async isolate(first: unknown, ctx: SinkWriteContext | undefined): Promise<Session> {
    this.cfg.logger.warn('PostgreSQL refused a row; loading the transaction again without it', {
      error: errorMessage(first),
    });
    if (this.txn === 'open') this.txn = 'aborted';
    // A refused row leaves its chunk as it joins `refused`: a retry after a lost connection keeps both.
    const refused: Refused[] = [];
    const session = await this.recovering(async () => {
      const s = await this.begin(false);
      for (let i = 0; i < this.uncommitted.length; i++) {
        this.uncommitted[i] = await this.loadIsolating(s, this.uncommitted[i] as Chunk, refused);
      }
      return s;
    });
    this.uncommitted = this.uncommitted.filter((c) => c.origins.length > 0);
    this.uncommittedBytes = this.uncommitted.reduce((sum, c) => sum + c.bytes.length, 0);
    this.pendingBytes.set(this.uncommittedBytes);
    if (ctx) {
      for (const { record, reason } of refused) ctx.deadLetter(record, reason);
    } else {
      this.refused.push(...refused);
    }
    return session;
  }

  /** Copies `chunk` under a savepoint until the server takes it; the chunk without its refused rows. */
  private async loadIsolating(session: Session, chunk: Chunk, refused: Refused[]): Promise<Chunk> {
    let current = chunk;
    while (current.origins.length > 0) {
      const error = await this.tryCopy(session, current.bytes);
      if (error === undefined) return current;
      const line = copyLineOf(error);
      if (line === undefined || line > current.origins.length) return this.bisect(session, current, refused);
      current = this.refuse(current, line - 1, error, refused);
    }
    return current;
  }

  /** Halves the rows until each refused one is alone (for failures that name no line, as a staged move). */
  private async bisect(session: Session, chunk: Chunk, refused: Refused[]): Promise<Chunk> {
    const rows = this.splitRows(chunk.bytes);
    const kept: number[] = [];
    const visit = async (lo: number, hi: number): Promise<void> => {
      const error = await this.tryCopy(session, Buffer.concat(rows.slice(lo, hi)));
      if (error === undefined) {
        for (let i = lo; i < hi; i++) kept.push(i);
      } else if (hi - lo === 1) {
        refused.push(this.refusedRow(rows[lo] as Buffer, chunk.origins[lo], error));
      } else {
        const mid = lo + Math.ceil((hi - lo) / 2);
        await visit(lo, mid);
        await visit(mid, hi);
      }
    };
    await visit(0, rows.length);
    return {
      bytes: Buffer.concat(kept.map((i) => rows[i] as Buffer)),
      origins: kept.map((i) => chunk.origins[i]),
    };
  }

  /** One COPY under a savepoint: undefined once the server took it, else the data error it refused. */
  private async tryCopy(session: Session, bytes: Buffer): Promise<unknown> {
    await session.query('SAVEPOINT etl_rows');
    try {
      await this.copyChunks(session, [bytes]);
      await session.query('RELEASE SAVEPOINT etl_rows');
      return undefined;
    } catch (error) {
      if (!isDataError(error)) throw error;
      await session.query('ROLLBACK TO SAVEPOINT etl_rows');
      await session.query('RELEASE SAVEPOINT etl_rows');
      return error;
    }
  }

  /** `chunk` without its row `index`, which joins `refused`. */
  private refuse(chunk: Chunk, index: number, error: unknown, refused: Refused[]): Chunk {
    const rows = this.splitRows(chunk.bytes);
    refused.push(this.refusedRow(rows[index] as Buffer, chunk.origins[index], error));
    rows.splice(index, 1);
    const origins = [...chunk.origins];
    origins.splice(index, 1);
    return { bytes: Buffer.concat(rows), origins };
  }

  private refusedRow(row: Buffer, origin: Origin | undefined, error: unknown): Refused {
    const record = this.cfg.decode(row);
    if (origin) record[ORIGIN] = origin;
    return { record, reason: `refused by PostgreSQL: ${errorMessage(error)}` };
  }

  private splitRows(bytes: Buffer): Buffer[] {
    return this.cfg.format() === 'binary' ? splitBinaryRows(bytes) : splitRows(bytes);
  }

  private async readCheckpoint(session: Session): Promise<CommittedCheckpoint | undefined> {
    const result = await session.query(this.checkpointSelect, [this.cfg.pipeline, this.cfg.sinkId]);
    const row = result.rows[0];
    if (row?.id === undefined || row.id === null) return undefined;
    const positions = typeof row.positions === 'string' ? JSON.parse(row.positions) : row.positions;
    return { id: Number(row.id), positions: (positions ?? {}) as Record<string, unknown> };
  }

  /**
   * Runs `op`; on a connection loss drops the session (the transaction with it) and retries on a new one
   * with backoff and jitter, as long as the outage lasts (or until `max_outage_seconds`). Any other
   * failure marks the transaction aborted, so the next use rolls back and replays.
   */
  private async recovering<T>(op: () => Promise<T>): Promise<T> {
    let outageStart: number | undefined;
    let gaveUp = false;
    let neverReached = false;
    try {
      return await retry(
        async () => {
          try {
            const result = await op();
            if (outageStart !== undefined) {
              this.cfg.logger.info('PostgreSQL is back; loading resumes', { down_ms: Date.now() - outageStart });
              this.outage.set(0);
              this.cfg.signals?.circuit('closed');
            }
            return result;
          } catch (error) {
            if (isConnectionLoss(error) || this.session?.broken) this.dropSession();
            else if (this.txn === 'open') this.txn = 'aborted';
            throw error;
          }
        },
        {
          policy: {
            max_attempts: Number.POSITIVE_INFINITY,
            initial_backoff_ms: this.cfg.initialBackoffMs,
            max_backoff_ms: this.cfg.maxBackoffMs,
          },
          signal: this.signal,
          retriable: (error) => {
            if (!isConnectionLoss(error)) return false;
            const now = Date.now();
            if (!this.reached) {
              // Never reached: a wrong URL or port fails at once, unless the start may wait for the server.
              outageStart ??= now;
              if (now - outageStart >= this.cfg.waitForServerMs) {
                neverReached = true;
                return false;
              }
              return true;
            }
            if (outageStart === undefined) {
              outageStart = now;
              this.outage.set(1);
              this.cfg.signals?.circuit('open');
              this.cfg.logger.warn(`lost PostgreSQL (${this.cfg.database.label}); pausing until it is back`, {
                error: errorMessage(error),
              });
            }
            if (this.cfg.maxOutageMs !== undefined && now - outageStart > this.cfg.maxOutageMs) {
              gaveUp = true;
              return false;
            }
            return true;
          },
          onRetry: () => {
            this.reconnects.inc();
            this.cfg.signals?.reconnected();
          },
        },
      );
    } catch (error) {
      if (neverReached) {
        const waited =
          this.cfg.waitForServerMs > 0 ? ` within wait_for_server_seconds (${this.cfg.waitForServerMs / 1000}s)` : '';
        throw new EtlError(
          'ETL_RUN_SINK_FAILED',
          `cannot reach PostgreSQL (${this.cfg.database.label})${waited}: ${errorMessage(error)}. Check the host ` +
            'and port of `url` (or DATABASE_URL); to wait for a server that is still starting, set wait_for_server_seconds',
          { cause: error },
        );
      }
      if (gaveUp) {
        throw new EtlError(
          'ETL_RUN_SINK_FAILED',
          `PostgreSQL (${this.cfg.database.label}) unreachable for more than max_outage_seconds ` +
            `(${(this.cfg.maxOutageMs ?? 0) / 1000}s): ${errorMessage(error)}`,
          { cause: error },
        );
      }
      throw error;
    }
  }

  private dropSession(): void {
    const session = this.session;
    this.session = undefined;
    session?.release(true);
    if (this.txn !== 'none') {
      this.txn = 'none';
      this.forgetTransaction();
    }
  }

  /** The transaction is gone: its partitions must be made again before its rows are replayed. */
  private forgetTransaction(): void {
    const lost = this.cfg.partitions?.rolledBack() ?? [];
    for (const start of lost) if (!this.lostPartitions.includes(start)) this.lostPartitions.push(start);
  }
}

/** At most this many encoded bytes wait for a commit before loads wait too. */
const MAX_DEFERRED_BYTES = 32 * 1024 * 1024;

/** The 1-based line of the COPY a refused row was on, from the error's context, when it names one. */
function copyLineOf(error: unknown): number | undefined {
  const where = (error as { where?: unknown } | null)?.where;
  if (typeof where !== 'string' || !where.startsWith('COPY ')) return undefined;
  const match = /, line (\d+)/.exec(where);
  return match ? Number(match[1]) : undefined;
}

/** The rows of a chunk of COPY text, each with its newline (escaping keeps newlines out of values). */
function splitRows(bytes: Buffer): Buffer[] {
  const rows: Buffer[] = [];
  let start = 0;
  for (let end = bytes.indexOf(10); end !== -1; end = bytes.indexOf(10, start)) {
    rows.push(bytes.subarray(start, end + 1));
    start = end + 1;
  }
  if (start < bytes.length) rows.push(bytes.subarray(start));
  return rows;
}

/** `"schema"."table" ("a", "b")` for COPY. */
