/**
 * Partitioned positions in the postgres sink (engine/operator.ts, "Partitioned positions"), against the real
 * server and the embedded database: two instances of a pipeline (two pipeline names, one schema) hand a
 * partition over; the newer owner resumes from the position committed with the rows, and the older owner's late
 * commit is fenced: neither its rows nor its positions land.
 */
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EtlError } from '../../engine/errors.ts';
import type { PartitionedPosition, Sink, Snapshot } from '../../engine/operator.ts';
import { accessRecord, DeadLetters, type Mode, PG_URL, Target, testContext } from './helpers.ts';

const NOW = Date.parse('2024-05-01T12:00:00Z');

function batch(from: number, count: number) {
  return Array.from({ length: count }, (_, i) => accessRecord(from + i, '2024-05-01T11:00:00Z'));
}

/** A snapshot whose source `queue` holds these partitions. */
function snapshot(id: number, partitions: PartitionedPosition['partitions']): Snapshot {
  return { id, positions: { queue: { partitions } } };
}

async function commit(sink: Sink, cut: Snapshot): Promise<void> {
  sink.cut?.(cut);
  await sink.prepareCommit?.(cut, new DeadLetters());
  await sink.commit?.(cut);
}

describe.each<Mode>(['server', 'embedded'])('partition positions in the postgres sink (%s)', (mode) => {
  let target: Target;
  const sinks: Sink[] = [];
  beforeEach(async () => {
    target = await Target.create(mode);
  });
  afterEach(async () => {
    for (const sink of sinks.splice(0)) await sink.close?.();
    await target.dispose();
  });

  async function instance(name: string): Promise<Sink> {
    const sink = target.sink(
      target.options({ partition: 'none' }),
      testContext(target.dataDir, 'store', name),
      () => NOW,
    );
    sinks.push(sink);
    await sink.open?.();
    return sink;
  }

  const count = async () => (await target.query(`SELECT count(*)::int AS n FROM "${target.schema}".access_logs`))[0]?.n;
  const stored = async () =>
    Object.fromEntries(
      (
        await target.query(
          `SELECT key, epoch::int AS epoch, position FROM "${target.schema}".etl_partition_positions ORDER BY key`,
        )
      ).map((row) => [row.key, { epoch: row.epoch, position: row.position }]),
    );

  it('hands a partition to a newer owner with the position committed with the rows, and fences the older one', async () => {
    const a = await instance('loader-a');
    const claimedByA = await a.claimPartitions?.(['t/0', 't/1']);
    expect(claimedByA).toEqual([
      { key: 't/0', epoch: 1, position: undefined },
      { key: 't/1', epoch: 1, position: undefined },
    ]);
    await a.write(batch(0, 30), new DeadLetters());
    await commit(a, snapshot(1, { 't/0': { epoch: 1, position: '20' }, 't/1': { epoch: 1, position: '10' } }));
    expect(await count()).toBe(30);

    // A rebalance gives t/1 to instance b: its claim fences a off and reads where a's rows end.
    const b = await instance('loader-b');
    expect(await b.claimPartitions?.(['t/1'])).toEqual([{ key: 't/1', epoch: 2, position: '10' }]);

    // a had read on in t/1 before it learnt of the revocation: its commit must not land, rows nor positions.
    await a.write(batch(30, 5), new DeadLetters());
    const late = commit(a, snapshot(2, { 't/0': { epoch: 1, position: '23' }, 't/1': { epoch: 1, position: '12' } }));
    await expect(late).rejects.toMatchObject({ code: 'ETL_PARTITION_FENCED' });
    await expect(late).rejects.toBeInstanceOf(EtlError);
    await a.close?.();
    expect(await count()).toBe(30);
    expect(await stored()).toEqual({ 't/0': { epoch: 1, position: '20' }, 't/1': { epoch: 2, position: '10' } });

    // b reads t/1 from offset 10 on and commits; only the partitions b claimed are stored by b.
    await b.write(batch(100, 2), new DeadLetters());
    await commit(b, snapshot(1, { 't/1': { epoch: 2, position: '12' } }));
    expect(await count()).toBe(32);
    expect(await stored()).toEqual({ 't/0': { epoch: 1, position: '20' }, 't/1': { epoch: 2, position: '12' } });

    // a restarts (a new run of instance a) and claims t/0 again: epoch 2, from where its rows ended.
    const again = await instance('loader-a');
    expect(await again.claimPartitions?.(['t/0'])).toEqual([{ key: 't/0', epoch: 2, position: '20' }]);
  });

  it('ignores positions of partitions it never claimed (another source, another sink)', async () => {
    const a = await instance('loader-a');
    await a.write(batch(0, 3), new DeadLetters());
    await commit(a, snapshot(1, { 'x/0': { epoch: 7, position: '3' } }));
    expect(await count()).toBe(3);
  });

  it.runIf(mode === 'server')(
    'a claim that comes while the older owner commits waits for it and reads the position it committed',
    async () => {
      const a = await instance('loader-a');
      await a.claimPartitions?.(['t/0']);
      // The older owner's commit, held open: it has updated the row and not committed yet.
      const older = new pg.Client({ connectionString: PG_URL });
      await older.connect();
      try {
        await older.query('BEGIN');
        const updated = await older.query(
          `UPDATE "${target.schema}".etl_partition_positions SET position = '"42"'::jsonb WHERE key = 't/0' AND epoch = 1`,
        );
        expect(updated.rowCount).toBe(1);
        const b = await instance('loader-b');
        const claim = b.claimPartitions?.(['t/0']);
        // The row is locked by the uncommitted update: the claim cannot return before the older owner commits.
        let settled = false;
        void claim?.then(() => {
          settled = true;
        });
        await older.query('SELECT pg_sleep(0)');
        expect(settled).toBe(false);
        await older.query('COMMIT');
        expect(await claim).toEqual([{ key: 't/0', epoch: 2, position: '42' }]);
      } finally {
        await older.end();
      }
    },
  );
});
