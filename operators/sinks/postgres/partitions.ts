/**
 * Range partitions on the event time, one per UTC hour, day or month, named `<table>_p<bucket>`.
 * Created ahead of time (premake) and on demand inside the load transaction, so rows for a new day or for
 * a backfill of last year never fail; rows too far in the past or future land in the default partition.
 * When a partition is created for a range the default partition already holds rows of, those rows move in.
 * Retention drops whole partitions. Creations and drops count only once their transaction commits.
 */
import { defaultPartitionName, qualified } from './ddl.ts';
import { ident, type Session } from './driver.ts';
import { addBuckets, bucketLabel, bucketStart, type Granularity, parseBucketLabel, sqlTimestamp } from './time.ts';

export interface PartitionPolicy {
  readonly schema: string;
  readonly table: string;
  readonly timeColumn: string;
  readonly granularity: Granularity;
  /** Buckets created ahead of the current one. */
  readonly premake: number;
  readonly futureLimitMs: number;
  readonly pastLimitMs: number;
  readonly retentionMs: number | undefined;
}

export class PartitionManager {
  private readonly policy: PartitionPolicy;
  private readonly parent: string;
  private readonly defaultPartition: string;
  private readonly known = new Set<number>();
  private readonly createdInTxn = new Set<number>();
  private readonly droppedInTxn = new Set<number>();
  /** Buckets rows of the current batch need and that do not exist yet. */
  private readonly needed = new Set<number>();
  // The bucket the last row fell in: most rows of a batch share it, so most rows cost two comparisons.
  private hitLo = 0;
  private hitHi = 0;
  private windowLo = Number.NEGATIVE_INFINITY;
  private windowHi = Number.POSITIVE_INFINITY;
  private lastRetentionCutoff: number | undefined;

  constructor(policy: PartitionPolicy) {
    this.policy = policy;
    this.parent = qualified(policy.schema, policy.table);
    this.defaultPartition = qualified(policy.schema, defaultPartitionName(policy.table));
  }

  /** Registers the partitions that exist (by name; others are ignored). */
  load(names: Iterable<string>): void {
    const prefix = `${this.policy.table}_p`;
    for (const name of names) {
      if (!name.startsWith(prefix)) continue;
      const start = parseBucketLabel(name.slice(prefix.length), this.policy.granularity);
      if (!Number.isNaN(start)) this.known.add(start);
    }
    this.resetHit();
  }

  /** Bucket starts of the partitions that exist, as of the last commit. */
  buckets(): number[] {
    return [...this.known].sort((a, b) => a - b);
  }

  partitionName(start: number): string {
    return `${this.policy.table}_p${bucketLabel(start, this.policy.granularity)}`;
  }

  /** Notes the event time of a row about to be loaded; collects partitions to create before the COPY. */
  note(ms: number): void {
    if (ms >= this.hitLo && ms < this.hitHi) return;
    const g = this.policy.granularity;
    const start = bucketStart(ms, g);
    const end = addBuckets(start, 1, g);
    if (!this.has(start) && end > this.windowLo && start <= this.windowHi) this.needed.add(start);
    this.hitLo = start;
    this.hitHi = end;
  }

  get pending(): boolean {
    return this.needed.size > 0;
  }

  /** Creates, in the open transaction, the partitions noted since the last call. */
  async createNeeded(session: Session): Promise<void> {
    for (const start of [...this.needed].sort((a, b) => a - b)) {
      if (!this.has(start)) await this.create(session, start);
    }
    this.needed.clear();
  }

  /** Moves the window, premakes and applies retention, in the open transaction. */
  async maintain(session: Session, now: number): Promise<void> {
    this.moveWindow(now);
    const g = this.policy.granularity;
    const current = bucketStart(now, g);
    for (let i = 0; i <= this.policy.premake; i++) {
      const start = addBuckets(current, i, g);
      if (!this.has(start)) await this.create(session, start);
    }
    const cutoff = this.retentionCutoff(now);
    if (cutoff === undefined) return;
    for (const start of this.known) {
      if (this.droppedInTxn.has(start) || addBuckets(start, 1, g) > cutoff) continue;
      await session.query(`DROP TABLE IF EXISTS ${qualified(this.policy.schema, this.partitionName(start))}`);
      this.droppedInTxn.add(start);
    }
    const cutoffBucket = bucketStart(cutoff, g);
    if (this.lastRetentionCutoff !== cutoffBucket) {
      await session.query(
        `DELETE FROM ONLY ${this.defaultPartition} WHERE ${ident(this.policy.timeColumn)} < ${sqlTimestamp(cutoffBucket)}`,
      );
      this.lastRetentionCutoff = cutoffBucket;
    }
    this.resetHit();
  }

  /** The statements `maintain` would run against the partitions that exist (for dry runs). */
  plan(now: number): string[] {
    const out: string[] = [];
    const g = this.policy.granularity;
    const current = bucketStart(now, g);
    for (let i = 0; i <= this.policy.premake; i++) {
      const start = addBuckets(current, i, g);
      if (!this.known.has(start)) out.push(this.createStatement(start));
    }
    const cutoff = this.retentionCutoff(now);
    if (cutoff !== undefined) {
      for (const start of this.buckets()) {
        if (addBuckets(start, 1, g) <= cutoff) {
          out.push(`DROP TABLE IF EXISTS ${qualified(this.policy.schema, this.partitionName(start))}`);
        }
      }
    }
    return out;
  }

  /** The transaction committed: its creations and drops are real. */
  committed(): void {
    for (const start of this.createdInTxn) this.known.add(start);
    for (const start of this.droppedInTxn) this.known.delete(start);
    this.createdInTxn.clear();
    this.droppedInTxn.clear();
  }

  /** The transaction is gone; returns the partitions it had created, which a replay needs again. */
  rolledBack(): number[] {
    const lost = [...this.createdInTxn];
    this.createdInTxn.clear();
    this.droppedInTxn.clear();
    // `needed` stays: the batch being loaded still needs those partitions in the next transaction.
    this.lastRetentionCutoff = undefined;
    this.resetHit();
    return lost;
  }

  /** Recreates, in a new transaction, partitions a rolled-back one had created. */
  async recreate(session: Session, starts: readonly number[]): Promise<void> {
    for (const start of starts) if (!this.has(start)) await this.create(session, start);
  }

  private has(start: number): boolean {
    return (this.known.has(start) && !this.droppedInTxn.has(start)) || this.createdInTxn.has(start);
  }

  private moveWindow(now: number): void {
    const cutoff = this.retentionCutoff(now);
    const past = now - this.policy.pastLimitMs;
    this.windowLo = cutoff === undefined ? past : Math.max(past, cutoff);
    this.windowHi = now + this.policy.futureLimitMs;
  }

  private retentionCutoff(now: number): number | undefined {
    return this.policy.retentionMs === undefined ? undefined : now - this.policy.retentionMs;
  }

  private createStatement(start: number): string {
    const name = qualified(this.policy.schema, this.partitionName(start));
    const end = addBuckets(start, 1, this.policy.granularity);
    return `CREATE TABLE IF NOT EXISTS ${name} PARTITION OF ${this.parent} FOR VALUES FROM (${sqlTimestamp(start)}) TO (${sqlTimestamp(end)})`;
  }

  private async create(session: Session, start: number): Promise<void> {
    const end = addBuckets(start, 1, this.policy.granularity);
    const lo = sqlTimestamp(start);
    const hi = sqlTimestamp(end);
    const time = ident(this.policy.timeColumn);
    const range = `${time} >= ${lo} AND ${time} < ${hi}`;
    const strays = await session.query(`SELECT 1 FROM ONLY ${this.defaultPartition} WHERE ${range} LIMIT 1`);
    if (strays.rows.length === 0) {
      await session.query(this.createStatement(start));
    } else {
      // Creating the partition over rows the default partition holds would fail: move them in first.
      const name = qualified(this.policy.schema, this.partitionName(start));
      await session.query(`CREATE TABLE ${name} (LIKE ${this.parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`);
      await session.query(
        `WITH moved AS (DELETE FROM ONLY ${this.defaultPartition} WHERE ${range} RETURNING *) INSERT INTO ${name} SELECT * FROM moved`,
      );
      await session.query(`ALTER TABLE ${this.parent} ATTACH PARTITION ${name} FOR VALUES FROM (${lo}) TO (${hi})`);
    }
    this.createdInTxn.add(start);
    this.resetHit();
  }

  private resetHit(): void {
    this.hitLo = 0;
    this.hitHi = 0;
  }
}
