/**
 * The load transaction. Rows are COPYed into one open transaction and become visible only when
 * `commit` upserts the checkpoint row and commits, so rows and checkpoint are atomic. Because a batch is
 * acknowledged before that commit, the encoded payload since the last commit is kept: after a connection
 * loss the loader reconnects (exponential backoff with full jitter, waiting out an outage while the
 * pipeline stalls behind it) and replays it into a new transaction, so nothing acknowledged is lost.
 */
import { EtlError, errorMessage } from '../../../engine/errors.ts';
import type { Logger, OperatorMetrics, SinkWriteContext, Snapshot } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import { retry } from '../../../engine/retry.ts';
import { CHECKPOINT_TABLE, qualified } from './ddl.ts';
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

  /** Loads encoded rows (one COPY line each, `records` aligned) into the open transaction. */
  load(lines: string[], records: EtlRecord[], ctx: SinkWriteContext): Promise<void> {
    return this.serial(async () => {
      const chunk = Buffer.from(lines.join(''), 'utf8');
      let loaded: Buffer = chunk;
      try {
        await this.recovering(async () => {
          const session = await this.begin();
          await this.cfg.partitions?.createNeeded(session);
          await this.copy(session, [chunk]);
        });
      } catch (error) {
        if (!isDataError(error)) throw error;
        loaded = await this.loadIsolating(lines, records, ctx, error);
      }
      if (loaded.length === 0) return;
      this.uncommitted.push(loaded);
      this.uncommittedBytes += loaded.length;
      this.pendingBytes.set(this.uncommittedBytes);
      if (this.uncommittedBytes >= this.cfg.maxUncommittedBytes) this.cfg.requestCheckpoint();
    });
  }

  /** Upserts the checkpoint row and commits, atomically with every row loaded since the last commit. */
  commit(snapshot: Snapshot): Promise<void> {
    return this.serial(async () => {
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

  /** Waits for the work queued so far. */
  idle(): Promise<void> {
    return this.serial(async () => {});
  }

  /** Rolls back what was never committed and releases the connection. Idempotent. */
  async close(): Promise<void> {
    this.closing.abort(new EtlError('ETL_RUN_ABORTED', 'postgres sink closed'));
    await this.tail.catch(() => {});
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
    return session;
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
    ctx: SinkWriteContext,
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
    for (const [record, reason] of refused) ctx.deadLetter(record, reason);
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
    const lost = this.cfg.partitions?.rolledBack() ?? [];
    for (const start of lost) if (!this.lostPartitions.includes(start)) this.lostPartitions.push(start);
  }
}

/** `"schema"."table" ("a", "b")` for COPY. */
export function copyTarget(table: string, columns: readonly string[]): string {
  return `${table} (${columns.map(ident).join(', ')})`;
}
