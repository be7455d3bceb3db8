/**
 * Partitioned positions (engine/operator.ts) in PostgreSQL: one row per partition key in
 * `<schema>.etl_partition_positions`, shared by every pipeline instance that loads into the schema. A claim bumps
 * the key's epoch in a short transaction of its own; the load transaction stores each claimed key's position with
 * the rows, only where the epoch is still the claimed one. Row locks order the two: a claim that comes while a
 * commit holds the row waits and then reads the position committed with the rows; a commit that comes after a
 * newer claim finds another epoch and fails (ETL_PARTITION_FENCED), so its rows are rolled back.
 */
import { EtlError } from '../../../engine/errors.ts';
import { type PartitionClaim, partitionEntries, type Snapshot } from '../../../engine/operator.ts';
import { qualified } from './ddl.ts';
import type { Database, Session } from './driver.ts';

export const PARTITION_TABLE = 'etl_partition_positions';

export class PartitionPositions {
  private readonly database: Database;
  private readonly schema: string;
  private readonly table: string;
  /** The epoch this sink claimed each key with: it stores positions of these keys only. */
  private readonly claimed = new Map<string, number>();

  constructor(database: Database, schema: string) {
    this.database = database;
    this.schema = schema;
    this.table = qualified(schema, PARTITION_TABLE);
  }

  /** Claims `keys`: each gets its stored epoch plus one (1 for a new key) and its stored position. */
  async claim(keys: readonly string[]): Promise<PartitionClaim[]> {
    const session = await this.database.session();
    let destroy = false;
    try {
      await session.query('BEGIN');
      try {
        if (this.database.kind === 'server') {
          // Instances claiming at once must not race to create the table.
          await session.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`etl-ddl:${this.table}`]);
        }
        await session.query(
          `CREATE TABLE IF NOT EXISTS ${this.table} (
  key text PRIMARY KEY,
  epoch bigint NOT NULL,
  position jsonb,
  claimed_at timestamptz NOT NULL DEFAULT now(),
  committed_at timestamptz
)`,
        );
        const claims: PartitionClaim[] = [];
        for (const key of keys) {
          const result = await session.query(
            `INSERT INTO ${this.table} AS t (key, epoch) VALUES ($1, 1)
             ON CONFLICT (key) DO UPDATE SET epoch = t.epoch + 1, claimed_at = now()
             RETURNING epoch::text AS epoch, position::text AS position`,
            [key],
          );
          const row = result.rows[0] as { epoch: string; position: unknown };
          claims.push({ key, epoch: Number(row.epoch), position: parseJson(row.position) });
        }
        await session.query('COMMIT');
        for (const claim of claims) this.claimed.set(claim.key, claim.epoch);
        return claims;
      } catch (error) {
        await session.query('ROLLBACK').catch(() => {
          destroy = true;
        });
        throw error;
      }
    } finally {
      session.release(destroy);
    }
  }

  /**
   * In the load transaction, before it commits: stores the position of every key this sink claimed that the
   * snapshot holds, fenced by the epoch the position was emitted with.
   */
  async store(session: Session, snapshot: Snapshot): Promise<void> {
    if (this.claimed.size === 0) return;
    for (const entry of partitionEntries(snapshot.positions)) {
      if (!this.claimed.has(entry.key)) continue;
      const result = await session.query(
        `UPDATE ${this.table} SET position = $3::jsonb, committed_at = now() WHERE key = $1 AND epoch = $2`,
        [entry.key, entry.epoch, JSON.stringify(entry.position)],
      );
      if (result.rowCount === 1) continue;
      const now = await session.query(`SELECT epoch::text AS epoch FROM ${this.table} WHERE key = $1`, [entry.key]);
      const stored = (now.rows[0] as { epoch?: string } | undefined)?.epoch;
      throw new EtlError(
        'ETL_PARTITION_FENCED',
        `partition ${entry.key} was claimed by a newer owner (epoch ${stored ?? 'none'}, this run holds ${entry.epoch}) ` +
          `in ${this.schema}.${PARTITION_TABLE}: the rows of snapshot ${snapshot.id} are not committed; a restart ` +
          'claims its partitions again and resumes from the positions stored with the rows',
      );
    }
  }
}

/** The stored position, read as text so that both drivers hand back the JSON untouched. */
function parseJson(value: unknown): unknown {
  return typeof value === 'string' ? JSON.parse(value) : undefined;
}
