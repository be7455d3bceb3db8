/** Partitions across day boundaries, backfills, outliers and retention, on the server and embedded. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Sink } from '../../engine/operator.ts';
import type { PostgresSinkOptions } from '../../operators/sinks/postgres/schema.ts';
import { accessRecord, DeadLetters, type Mode, Target, testContext } from './helpers.ts';

describe.each<Mode>(['server', 'embedded'])('partitions (%s)', (mode) => {
  let target: Target;
  let clock: number;
  let snapshot: number;
  beforeEach(async () => {
    target = await Target.create(mode);
    snapshot = 0;
  });
  afterEach(async () => {
    await target.dispose();
  });

  async function run(patch: Partial<PostgresSinkOptions>, times: string[]): Promise<void> {
    const sink: Sink = target.sink(target.options(patch), testContext(target.dataDir), () => clock);
    await sink.open?.();
    const dl = new DeadLetters();
    await sink.write(
      times.map((t, i) => accessRecord(snapshot * 1000 + i, t)),
      dl,
    );
    await sink.commit?.({ id: ++snapshot, positions: {} });
    await sink.close?.();
    expect(dl.records).toEqual([]);
  }

  /** Partition name → the event times it holds. */
  async function layout(): Promise<Record<string, string[]>> {
    const rows = await target.query(
      `SELECT c.relname::text AS part, to_char(a.timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS') AS t
         FROM "${target.schema}".access_logs a JOIN pg_class c ON c.oid = a.tableoid ORDER BY a.timestamp`,
    );
    const out: Record<string, string[]> = {};
    for (const r of rows) {
      const part = String(r.part);
      out[part] = [...(out[part] ?? []), String(r.t)];
    }
    return out;
  }

  async function partitionNames(): Promise<string[]> {
    const rows = await target.query(
      `SELECT c.relname::text AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = $1::regclass ORDER BY 1`,
      [`"${target.schema}".access_logs`],
    );
    return rows.map((r) => String(r.name));
  }

  it('puts rows on each side of midnight into their own day, created on demand', async () => {
    clock = Date.parse('2024-03-10T23:59:30Z');
    await run({ partition_premake: 0 }, [
      '2024-03-10T23:59:59.999Z',
      '2024-03-11T00:00:00.000Z',
      '2024-03-11T01:30:00+02:00',
      '2024-03-10T23:59:59.9999996Z',
    ]);
    // +02:00 is still the 10th in UTC; PostgreSQL rounds .9999996 up to the next day, and so does the sink.
    expect(await layout()).toEqual({
      access_logs_p20240310: ['2024-03-10T23:30:00.000', '2024-03-10T23:59:59.999'],
      access_logs_p20240311: ['2024-03-11T00:00:00.000', '2024-03-11T00:00:00.000'],
    });
  });

  it('creates the partitions of a backfill spanning months on demand', async () => {
    clock = Date.parse('2024-05-01T00:00:00Z');
    const times = ['2023-01-31T23:00:00Z', '2023-02-01T00:00:00Z', '2023-03-15T12:00:00Z', '2023-04-30T23:59:59Z'];
    await run({ partition: 'month', partition_premake: 1 }, times);
    expect(await partitionNames()).toEqual([
      'access_logs_default',
      'access_logs_p202301',
      'access_logs_p202302',
      'access_logs_p202303',
      'access_logs_p202304',
      'access_logs_p202405',
      'access_logs_p202406',
    ]);
    expect(Object.keys(await layout())).toEqual([
      'access_logs_p202301',
      'access_logs_p202302',
      'access_logs_p202303',
      'access_logs_p202304',
    ]);
  });

  it('parks outliers in the default partition and moves them out when their day comes', async () => {
    clock = Date.parse('2024-05-01T12:00:00Z');
    await run({ partition_premake: 0 }, ['2024-05-01T12:00:00Z', '2024-05-20T08:00:00Z', '1999-01-01T00:00:00Z']);
    expect(await layout()).toEqual({
      access_logs_default: ['1999-01-01T00:00:00.000', '2024-05-20T08:00:00.000'],
      access_logs_p20240501: ['2024-05-01T12:00:00.000'],
    });
    clock = Date.parse('2024-05-19T12:00:00Z');
    await run({ partition_premake: 0 }, ['2024-05-20T09:00:00Z']);
    expect(await layout()).toEqual({
      access_logs_default: ['1999-01-01T00:00:00.000'],
      access_logs_p20240501: ['2024-05-01T12:00:00.000'],
      access_logs_p20240520: ['2024-05-20T08:00:00.000', '2024-05-20T09:00:00.000'],
    });
  });

  it('retention drops whole partitions and old default-partition rows', async () => {
    clock = Date.parse('2024-05-10T12:00:00Z');
    await run({ partition_premake: 0 }, [
      '2024-05-05T10:00:00Z',
      '2024-05-06T10:00:00Z',
      '2024-05-09T10:00:00Z',
      '2024-05-10T10:00:00Z',
      '2001-01-01T00:00:00Z',
    ]);
    clock = Date.parse('2024-05-11T12:00:00Z');
    await run({ partition_premake: 0, retention: '3d' }, ['2024-05-11T10:00:00Z', '2024-05-07T10:00:00Z']);
    // The cutoff is 2024-05-08T12:00: the 5th and 6th are dropped, the 2001 outlier deleted; the late row of
    // the 7th, already past retention, gets no partition and waits in the default one for the next pass.
    expect(await partitionNames()).toEqual([
      'access_logs_default',
      'access_logs_p20240509',
      'access_logs_p20240510',
      'access_logs_p20240511',
    ]);
    expect(await layout()).toEqual({
      access_logs_default: ['2024-05-07T10:00:00.000'],
      access_logs_p20240509: ['2024-05-09T10:00:00.000'],
      access_logs_p20240510: ['2024-05-10T10:00:00.000'],
      access_logs_p20240511: ['2024-05-11T10:00:00.000'],
    });
    clock = Date.parse('2024-05-12T12:00:00Z');
    await run({ partition_premake: 0, retention: '3d' }, []);
    expect(Object.values(await layout()).flat()).toEqual([
      '2024-05-09T10:00:00.000',
      '2024-05-10T10:00:00.000',
      '2024-05-11T10:00:00.000',
    ]);
  });
});

describe('partitions made by two instances loading into one table (server)', () => {
  let target: Target;
  beforeEach(async () => {
    target = await Target.create('server');
  });
  afterEach(async () => {
    await target.dispose();
  });

  it('lets the second wait for the first one’s new partition instead of failing on it', async () => {
    const clock = () => Date.parse('2024-03-10T12:00:00Z');
    const options = target.options({ partition_premake: 0 });
    // Scaled-out instances: two pipelines (two advisory locks of their own) writing one table.
    const first = target.sink(options, testContext(target.dataDir, 'store', 'first'), clock);
    const second = target.sink(options, testContext(target.dataDir, 'store', 'second'), clock);
    await first.open?.();
    await second.open?.();
    const dl = new DeadLetters();
    // A day neither has seen: the first creates its partition in its open load transaction; the second's creation
    // waits on the parent table's lock (PostgreSQL takes it before looking the name up), then finds it made.
    await first.write([accessRecord(1, '2024-03-12T08:00:00Z')], dl);
    const secondWrite = second.write([accessRecord(2, '2024-03-12T09:00:00Z')], dl);
    await first.commit?.({ id: 1, positions: {} });
    await secondWrite;
    await second.commit?.({ id: 1, positions: {} });
    await first.close?.();
    await second.close?.();
    expect(dl.records).toEqual([]);
    const rows = await target.query(
      `SELECT c.relname::text AS part, count(*)::int AS n FROM "${target.schema}".access_logs a
         JOIN pg_class c ON c.oid = a.tableoid GROUP BY 1 ORDER BY 1`,
    );
    expect(rows).toEqual([{ part: 'access_logs_p20240312', n: 2 }]);
  });
});
