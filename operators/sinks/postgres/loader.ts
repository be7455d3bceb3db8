/**
 * The load transaction. Rows are COPYed into one open transaction and become visible only when
 * `commit` upserts the checkpoint row and commits, so rows and checkpoint are atomic. Because a batch is
 * acknowledged before that commit, the encoded payload since the last commit is kept: after a connection
 * loss the loader reconnects (exponential backoff with full jitter, waiting out an outage while the
 * pipeline stalls behind it) and replays it into a new transaction, so nothing acknowledged is lost.
 */
import { EtlError, errorMessage } from '../../../engine/errors.ts';
import type { Logger, OperatorMetrics, SinkWriteContext, Snapshot } from '../../../engine/operator.ts';
import { deadLetter, type EtlRecord } from '../../../engine/record.ts';
import { retry } from '../../../engine/retry.ts';
import { CHECKPOINT_TABLE, qualified, REJECTED_TABLE } from './ddl.ts';
import { type Database, ident, type Session } from './driver.ts';
import { isConnectionLoss, isDataError } from './faults.ts';
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
  readonly logger: Logger;
  readonly metrics: OperatorMetrics;
  readonly signal: AbortSignal;
  readonly now: () => number;
  /** Asks the runtime for a checkpoint soon (the uncommitted payload is large). */
  readonly requestCheckpoint: () => void;
}

interface InFlight {
  /** Resolves to the COPY's error, or undefined once the server has it. */
  readonly outcome: Promise<unknown>;
  readonly chunk: Buffer;
  readonly lines: string[];
  readonly records: EtlRecord[];
}

export class Loader {
  private readonly cfg: LoaderConfig;
  private session: Session | undefined;
  /** `open`: a transaction is running; `aborted`: it failed and must be rolled back and replayed. */
  private txn: 'none' | 'open' | 'aborted' = 'none';
  private uncommitted: Buffer[] = [];
  private uncommittedBytes = 0;
  /** Partitions a lost transaction had created, to recreate before its rows are replayed. */
  private lostPartitions: number[] = [];
  private tail: Promise<unknown> = Promise.resolve();
  /** The last batch's COPY, sent but not yet confirmed. */
  private inflight: InFlight | undefined;
  /**
   * Rows the server refused while a checkpoint settled the last batch, which was acknowledged already:
   * with no batch to dead-letter them with, they are recorded in `etl_rejected`, in the transaction.
   */
  private rejected: Array<{ reasons: string[]; records: string[] }> = [];
  /** How many entries of `rejected` the open transaction holds. */
  private rejectedInTxn = 0;
  private readonly rejectTable: string;
  private readonly rejectInsert: string;
  private readonly closing = new AbortController();
  private readonly signal: AbortSignal;
  private readonly checkpointUpsert: string;
  private readonly checkpointSelect: string;
  private readonly reconnects: { inc(value?: number): void };
  private readonly duplicates: { inc(value?: number): void };
  private readonly outage: { set(value: number): void };
  private readonly pendingBytes: { set(value: number): void };

  constructor(cfg: LoaderConfig) {
    this.cfg = cfg;
    this.signal = AbortSignal.any([cfg.signal, this.closing.signal]);
    const table = qualified(cfg.schema, CHECKPOINT_TABLE);
    this.checkpointUpsert =
      `INSERT INTO ${table} (pipeline, sink, snapshot_id, positions, committed_at) VALUES ($1, $2, $3, $4::jsonb, now()) ` +
      'ON CONFLICT (pipeline, sink) DO UPDATE SET snapshot_id = EXCLUDED.snapshot_id, positions = EXCLUDED.positions, ' +
      'committed_at = EXCLUDED.committed_at';
    const rejects = qualified(cfg.schema, REJECTED_TABLE);
    this.rejectTable =
      `CREATE TABLE IF NOT EXISTS ${rejects} (pipeline text NOT NULL, sink text NOT NULL, ` +
      'rejected_at timestamptz NOT NULL DEFAULT now(), reason text NOT NULL, record jsonb NOT NULL)';
    this.rejectInsert =
      `INSERT INTO ${rejects} (pipeline, sink, reason, record) ` +
      'SELECT $1, $2, r, d::jsonb FROM unnest($3::text[], $4::text[]) AS u(r, d)';
    this.checkpointSelect = `SELECT snapshot_id::text AS id FROM ${table} WHERE pipeline = $1 AND sink = $2`;
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

  /** Runs `op` on a session outside the load transaction (DDL, lookups), with reconnection. */
  run<T>(op: (session: Session) => Promise<T>): Promise<T> {
    return this.serial(() => this.recovering(async () => op(await this.connect())));
  }

  /**
   * Loads encoded rows (one COPY line each, `records` aligned) into the open transaction. The COPY is
   * sent, not awaited: its outcome is settled by the next call (or by the checkpoint), so encoding the next
   * batch overlaps the server's work on this one. A row the server refuses is still dead-lettered on its own.
   */
  load(lines: string[], records: EtlRecord[], ctx: SinkWriteContext): Promise<void> {
    return this.serial(async () => {
      await this.settle(ctx);
      const chunk = Buffer.from(lines.join(''), 'utf8');
      const session = await this.recovering(async () => {
        const s = await this.begin();
        await this.cfg.partitions?.createNeeded(s);
        return s;
      });
      this.uncommitted.push(chunk);
      this.uncommittedBytes += chunk.length;
      this.pendingBytes.set(this.uncommittedBytes);
      const { sent, done } = this.startCopy(session, chunk);
      const outcome = done.then(
        () => undefined,
        (error: unknown) => error ?? new Error('COPY failed'),
      );
      this.inflight = { outcome, chunk, lines, records };
      if (this.uncommittedBytes >= this.cfg.maxUncommittedBytes) this.cfg.requestCheckpoint();
      await sent;
    });
  }

  /** Waits for the COPY in flight; on a connection loss replays, on refused rows isolates them. */
  private async settle(ctx: SinkWriteContext | undefined): Promise<void> {
    const flight = this.inflight;
    if (!flight) return;
    this.inflight = undefined;
    const error = await flight.outcome;
    if (error === undefined) return;
    if (isDataError(error)) {
      // The refused batch is the last chunk: take it out, then find the rows the server refuses.
      this.uncommitted.pop();
      this.uncommittedBytes -= flight.chunk.length;
      const good = await this.loadIsolating(flight.lines, flight.records, ctx, error);
      if (good.length > 0) {
        this.uncommitted.push(good);
        this.uncommittedBytes += good.length;
      }
      this.pendingBytes.set(this.uncommittedBytes);
      return;
    }
    if (isConnectionLoss(error) || this.session?.broken) this.dropSession();
    else {
      if (this.txn === 'open') this.txn = 'aborted';
      throw error;
    }
    // The chunk is in `uncommitted`: a new transaction replays it with the rest.
    await this.recovering(() => this.begin());
  }

  /** Upserts the checkpoint row and commits, atomically with every row loaded since the last commit. */
  commit(snapshot: Snapshot): Promise<void> {
    return this.serial(async () => {
      await this.settle(undefined);
      const params = [this.cfg.pipeline, this.cfg.sinkId, snapshot.id, JSON.stringify(snapshot.positions)];
      let commitSent = false;
      await this.recovering(async () => {
        if (commitSent) {
          // The COMMIT went out but its answer was lost: the checkpoint row tells whether it happened.
          commitSent = false;
          if ((await this.readCheckpoint(await this.connect())) === snapshot.id) return;
          this.cfg.logger.warn('commit was lost with the connection; replaying it', { snapshot: snapshot.id });
        }
        const session = await this.begin();
        await session.query(this.checkpointUpsert, params);
        commitSent = true;
        const result = await session.query('COMMIT');
        commitSent = false;
        if (result.command === 'ROLLBACK') throw new Error('PostgreSQL rolled the load transaction back at COMMIT');
      });
      this.txn = 'none';
      this.rejected = [];
      this.rejectedInTxn = 0;
      this.uncommitted = [];
      this.uncommittedBytes = 0;
      this.lostPartitions = [];
      this.pendingBytes.set(0);
      this.cfg.partitions?.committed();
    });
  }

  /** The last snapshot id committed with this sink's rows, from the checkpoint table. */
  committedSnapshotId(): Promise<number | undefined> {
    return this.run((session) => this.readCheckpoint(session));
  }

  /** Waits for the work queued so far, the COPY in flight included. */
  idle(): Promise<void> {
    return this.serial(() => this.settle(undefined));
  }

  /** Rolls back what was never committed and releases the connection. Idempotent. */
  async close(): Promise<void> {
    this.closing.abort(new EtlError('ETL_RUN_ABORTED', 'postgres sink closed'));
    await this.tail.catch(() => {});
    await this.inflight?.outcome;
    this.inflight = undefined;
    const session = this.session;
    this.session = undefined;
    if (!session) return;
    if (this.txn !== 'none') {
      await session.query('ROLLBACK').catch(() => {});
      this.txn = 'none';
    }
    session.release(true);
  }

  // ----------------------------------------------------------------------------------- internals

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => {});
    return next;
  }

  private async connect(): Promise<Session> {
    if (this.session?.broken) {
      this.cfg.logger.warn(`lost the connection to PostgreSQL (${this.cfg.database.label}); reconnecting`);
      this.dropSession();
    }
    this.session ??= await this.cfg.database.session();
    return this.session;
  }

  /** The open transaction; begins one (maintenance, lost partitions, replay) when there is none. */
  private async begin(): Promise<Session> {
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
    }
    if (this.uncommitted.length > 0) {
      this.cfg.logger.info('replaying rows not yet committed', { bytes: this.uncommittedBytes });
      await this.copy(session, this.uncommitted);
    }
    await this.insertRejected(session);
    return session;
  }

  /** Sends one batch; with staging, the move into the target is queued right behind the COPY. */
  private startCopy(session: Session, chunk: Buffer): { sent: Promise<void>; done: Promise<void> } {
    const staging = this.cfg.staging;
    if (!staging) {
      const handle = session.copyStart(this.cfg.copyTarget, [chunk]);
      return { sent: handle.sent, done: handle.done.then(noop) };
    }
    const handle = session.copyStart(staging.table, [chunk]);
    const moved = session.query(staging.move);
    const done = Promise.all([handle.done, moved]).then(([copied, result]) => {
      const skipped = copied - (result.rowCount ?? copied);
      if (skipped > 0) this.duplicates.inc(skipped);
    });
    // Whichever fails first is the outcome; the other must not surface as an unhandled rejection.
    moved.catch(noop);
    return { sent: handle.sent, done };
  }

  private async copy(session: Session, chunks: readonly Uint8Array[]): Promise<void> {
    const staging = this.cfg.staging;
    if (!staging) {
      await session.copyFrom(this.cfg.copyTarget, chunks);
      return;
    }
    const copied = await session.copyFrom(staging.table, chunks);
    const moved = await session.query(staging.move);
    const skipped = copied - (moved.rowCount ?? copied);
    if (skipped > 0) this.duplicates.inc(skipped);
  }

  /**
   * PostgreSQL refused a row the encoder let through: the transaction is aborted, so replay what was
   * acknowledged before, then load the batch in halves under savepoints until each refused row is alone.
   */
  private async loadIsolating(
    lines: string[],
    records: EtlRecord[],
    ctx: SinkWriteContext | undefined,
    first: unknown,
  ): Promise<Buffer> {
    this.cfg.logger.warn('PostgreSQL refused a row of the batch; isolating it', { error: errorMessage(first) });
    this.txn = 'aborted';
    const good: string[] = [];
    const refused: Array<[EtlRecord, string]> = [];
    await this.recovering(async () => {
      good.length = 0;
      refused.length = 0;
      const session = await this.begin();
      await this.cfg.partitions?.createNeeded(session);
      await this.bisect(session, lines, records, 0, lines.length, good, refused);
    });
    if (ctx) for (const [record, reason] of refused) ctx.deadLetter(record, reason);
    else if (refused.length > 0) {
      const reasons = refused.map(([, reason]) => reason);
      const records = refused.map(([record, reason]) => JSON.stringify(deadLetter(record, this.cfg.sinkId, reason)));
      this.rejected.push({ reasons, records });
      this.cfg.logger.warn(
        `${refused.length} rows refused by PostgreSQL at a checkpoint; recorded in ${REJECTED_TABLE}`,
        {
          reason: reasons[0],
        },
      );
      await this.recovering(async () => this.insertRejected(await this.begin()));
    }
    return Buffer.from(good.join(''), 'utf8');
  }

  private async bisect(
    session: Session,
    lines: string[],
    records: EtlRecord[],
    lo: number,
    hi: number,
    good: string[],
    refused: Array<[EtlRecord, string]>,
  ): Promise<void> {
    const part = lines.slice(lo, hi);
    await session.query('SAVEPOINT etl_rows');
    try {
      await this.copy(session, [Buffer.from(part.join(''), 'utf8')]);
      await session.query('RELEASE SAVEPOINT etl_rows');
      for (const line of part) good.push(line);
      return;
    } catch (error) {
      if (!isDataError(error)) throw error;
      await session.query('ROLLBACK TO SAVEPOINT etl_rows');
      await session.query('RELEASE SAVEPOINT etl_rows');
      if (hi - lo === 1) {
        refused.push([records[lo] as EtlRecord, `refused by PostgreSQL: ${errorMessage(error)}`]);
        return;
      }
    }
    const mid = lo + Math.ceil((hi - lo) / 2);
    await this.bisect(session, lines, records, lo, mid, good, refused);
    await this.bisect(session, lines, records, mid, hi, good, refused);
  }

  /** Inserts the refused rows the open transaction does not hold yet. */
  private async insertRejected(session: Session): Promise<void> {
    while (this.rejectedInTxn < this.rejected.length) {
      const { reasons, records } = this.rejected[this.rejectedInTxn] as { reasons: string[]; records: string[] };
      await session.query(this.rejectTable);
      await session.query(this.rejectInsert, [this.cfg.pipeline, this.cfg.sinkId, reasons, records]);
      this.rejectedInTxn++;
    }
  }

  private async readCheckpoint(session: Session): Promise<number | undefined> {
    const result = await session.query(this.checkpointSelect, [this.cfg.pipeline, this.cfg.sinkId]);
    const id = result.rows[0]?.id;
    return id === undefined || id === null ? undefined : Number(id);
  }

  /**
   * Runs `op`; on a connection loss drops the session (the transaction with it) and retries on a new one
   * with backoff and jitter, as long as the outage lasts (or until `max_outage_seconds`). Any other
   * failure marks the transaction aborted, so the next use rolls back and replays.
   */
  private async recovering<T>(op: () => Promise<T>): Promise<T> {
    let outageStart: number | undefined;
    let gaveUp = false;
    try {
      return await retry(
        async () => {
          try {
            const result = await op();
            if (outageStart !== undefined) {
              this.cfg.logger.info('PostgreSQL is back; loading resumes', { down_ms: Date.now() - outageStart });
              this.outage.set(0);
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
            if (outageStart === undefined) {
              outageStart = now;
              this.outage.set(1);
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
          onRetry: () => this.reconnects.inc(),
        },
      );
    } catch (error) {
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
    this.rejectedInTxn = 0;
    const lost = this.cfg.partitions?.rolledBack() ?? [];
    for (const start of lost) if (!this.lostPartitions.includes(start)) this.lostPartitions.push(start);
  }
}

function noop(): void {}

/** `"schema"."table" ("a", "b")` for COPY. */
export function copyTarget(table: string, columns: readonly string[]): string {
  return `${table} (${columns.map(ident).join(', ')})`;
}
