/** The postgres sink through its contract, against the real server and the embedded database. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type EtlRecord, ORIGIN } from '../../engine/record.ts';
import { restoreNul, restoreNulJson } from '../../operators/sinks/postgres/nul.ts';
import { DeadLetters, type Mode, serverQuery, Target, testContext, accessRecord } from './helpers.ts';

const NOW = Date.parse('2024-05-01T12:00:00Z');
const now = () => NOW;

function batch(from: number, count: number, time = '2024-05-01T11:00:00Z') {
  return Array.from({ length: count }, (_, i) => accessRecord(from + i, time));
}

describe.each<Mode>(['server', 'embedded'])('postgres sink (%s)', (mode) => {
  let target: Target;
  beforeEach(async () => {
    target = await Target.create(mode);
  });
  afterEach(async () => {
    await target.dispose();
  });

  it('commits rows with the checkpoint, rolls back what was never committed', async () => {
    const ctx = testContext(target.dataDir);
    const sink = target.sink(target.options(), ctx, now);
    await sink.open?.();
    await sink.restore?.(undefined, undefined);
    const dl = new DeadLetters();
    await sink.write(batch(0, 500), dl);
    await sink.write(batch(500, 500), dl);
    if (mode === 'server') {
      // Acknowledged but not committed: invisible to others.
      const [row] = await serverQuery(`SELECT count(*)::int AS n FROM "${target.schema}".access_logs`);
      expect(row?.n).toBe(0);
    }
    await sink.prepareCommit?.({ id: 1, positions: { files: { offset: 1000 } } }, new DeadLetters());
    await sink.commit?.({ id: 1, positions: { files: { offset: 1000 } } });
    expect((await sink.committedCheckpoint?.())?.id).toBe(1);
    await sink.write(batch(1000, 100), dl);
    await sink.close?.();
    await sink.close?.();
    expect(dl.records).toEqual([]);

    const rows = await target.query(
      `SELECT count(*)::int AS n, count(DISTINCT path)::int AS paths, min(timestamp) = '2024-05-01T11:00:00Z' AS t
         FROM "${target.schema}".access_logs`,
    );
    expect(rows[0]).toEqual({ n: 1000, paths: 1000, t: true });
    const [cp] = await target.query(
      `SELECT pipeline, sink, snapshot_id::int AS id, positions FROM "${target.schema}".etl_checkpoints`,
    );
    expect(cp).toEqual({ pipeline: 'test', sink: 'store', id: 1, positions: { files: { offset: 1000 } } });
  });

  it('keeps rows written after a cut out of that checkpoint, for the next one', async () => {
    const sink = target.sink(target.options(), testContext(target.dataDir), now);
    await sink.open?.();
    const dl = new DeadLetters();
    const count = async () =>
      (await target.query(`SELECT count(*)::int AS n FROM "${target.schema}".access_logs`))[0]?.n;
    await sink.write(batch(0, 300), dl);
    const first = { id: 1, positions: { rows: 300 } };
    sink.cut?.(first);
    const committing = (async () => {
      await sink.prepareCommit?.(first, new DeadLetters());
      await sink.commit?.(first);
    })();
    // Written while the checkpoint commits: acknowledged, in no transaction yet.
    await sink.write(batch(300, 200), dl);
    await committing;
    if (mode === 'server') expect(await count()).toBe(300);
    const second = { id: 2, positions: { rows: 500 } };
    sink.cut?.(second);
    await sink.prepareCommit?.(second, new DeadLetters());
    await sink.commit?.(second);
    await sink.write(batch(500, 50), dl);
    await sink.close?.();
    expect(await count()).toBe(500);
    expect(dl.records).toEqual([]);
  });

  it('stores every good row and dead-letters each bad one with its reason', async () => {
    const sink = target.sink(target.options(), testContext(target.dataDir), now);
    await sink.open?.();
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ status: 70000 }, 'status: 70000 out of range'],
      [{ bytes: -5 }, 'bytes: -5 out of range'],
      [{ client_ip: '300.1.2.3' }, 'invalid IP address'],
      [{ timestamp: '0000-01-01T00:00:00Z' }, 'out-of-range timestamp'],
      [{ timestamp: 'yesterday' }, 'invalid or out-of-range timestamp'],
    ];
    const records: EtlRecord[] = [];
    const expectedReasons: string[] = [];
    for (let i = 0; i < 60; i++) {
      const [patch, reason] = bad[i % bad.length] as [Record<string, unknown>, string];
      records.push(accessRecord(i * 2, '2024-05-01T10:00:00Z'));
      records.push(accessRecord(i * 2 + 1, '2024-05-01T10:00:00Z', patch));
      expectedReasons.push(reason);
    }
    const dl = new DeadLetters();
    await sink.write(records, dl);
    await sink.commit?.({ id: 1, positions: {} });
    await sink.close?.();
    expect(dl.records).toHaveLength(60);
    dl.records.forEach((d, i) => {
      expect(d.reason).toContain(expectedReasons[i]);
      expect(d.record).toBe(records[i * 2 + 1]);
    });
    const rows = await target.query(`SELECT path FROM "${target.schema}".access_logs ORDER BY bytes`);
    expect(rows.map((r) => r.path)).toEqual(Array.from({ length: 60 }, (_, i) => `/item?seq=${i * 2}`));
  });

  it('stores U+0000 (which PostgreSQL cannot) as \\x00 in text and jsonb, recoverably, and loses no row to it', async () => {
    const sink = target.sink(target.options(), testContext(target.dataDir), now);
    await sink.open?.();
    // As parse keeps a TLS handshake sent to a plain HTTP port; and the text `\x00` sent literally.
    const records = [
      accessRecord(0, '2024-05-01T10:00:00Z', { path: '\u0016\u0003\u0001\u0000\u00a5\u0001\u0000', method: null }),
      accessRecord(1, '2024-05-01T10:00:00Z', {
        user_agent: 'evil\u0000agent',
        tls: { sni: 'a\u0000b', 'k\u0000': 1 },
      }),
      accessRecord(2, '2024-05-01T10:00:00Z', { path: '/a\\x00b\\x5c\\x5C\\', user_agent: 'C:\\x00\u0000' }),
      accessRecord(3, '2024-05-01T10:00:00Z', { extra: { raw: '\\x5cx00\u0000' } }),
    ];
    const dl = new DeadLetters();
    await sink.write(records, dl);
    await sink.commit?.({ id: 1, positions: {} });
    await sink.close?.();
    expect(dl.records).toEqual([]);
    const rows = await target.query(
      `SELECT path, user_agent, extra FROM "${target.schema}".access_logs ORDER BY bytes`,
    );
    expect(rows.map((r) => [r.path, r.user_agent])).toEqual([
      ['\u0016\u0003\u0001\\x00\u00a5\u0001\\x00', records[0]?.user_agent],
      [records[1]?.path, 'evil\\x00agent'],
      ['/a\\x5cx00b\\x5cx5c\\x5C\\', 'C:\\x5cx00\\x00'],
      [records[3]?.path, records[3]?.user_agent],
    ]);
    expect(rows[1]?.extra).toEqual({ tls: { sni: 'a\\x00b', 'k\\x00': 1 } });
    // The documented inverse gives back what the parser kept.
    const restored = rows.map((r) => ({
      path: restoreNul(r.path as string),
      user_agent: restoreNul(r.user_agent as string),
      extra: JSON.parse(restoreNulJson(JSON.stringify(r.extra))),
    }));
    expect(restored).toEqual([
      { path: records[0]?.path, user_agent: records[0]?.user_agent, extra: null },
      { path: records[1]?.path, user_agent: records[1]?.user_agent, extra: { tls: records[1]?.tls } },
      { path: records[2]?.path, user_agent: records[2]?.user_agent, extra: null },
      { path: records[3]?.path, user_agent: records[3]?.user_agent, extra: records[3]?.extra },
    ]);
  });

  it('loads through a staging table with unique_key, skipping rows already stored', async () => {
    const options = target.options({ unique_key: ['timestamp', 'path'] });
    const sink = target.sink(options, testContext(target.dataDir), now);
    await sink.open?.();
    const dl = new DeadLetters();
    await sink.write(batch(0, 300), dl);
    await sink.commit?.({ id: 1, positions: {} });
    // An at-least-once source delivers an overlapping range again.
    await sink.write(batch(200, 300), dl);
    await sink.write(batch(450, 10), dl);
    await sink.commit?.({ id: 2, positions: {} });
    await sink.close?.();
    const [row] = await target.query(
      `SELECT count(*)::int AS n, count(DISTINCT path)::int AS d FROM "${target.schema}".access_logs`,
    );
    expect(row).toEqual({ n: 500, d: 500 });
  });

  it("fills origin_columns from the records' origin: a queue sequence as unique key stores a redelivery once", async () => {
    const options = target.options({
      partition: 'none',
      origin_columns: { nats_sequence: 'sequence', nats_subject: 'subject', nats_deliveries: 'deliveries' },
      unique_key: ['nats_sequence'],
    });
    const sink = target.sink(options, testContext(target.dataDir), now);
    await sink.open?.();
    const dl = new DeadLetters();
    const delivered = (from: number, count: number, deliveries = 1) =>
      batch(from, count).map((r, i) => ({
        ...r,
        [ORIGIN]: { source: 'queue', file: 'nats:S', sequence: from + i + 1, subject: 'logs.a', deliveries },
      }));
    await sink.write(delivered(0, 100), dl);
    await sink.commit?.({ id: 1, positions: {} });
    // The broker delivers 50..99 again (their acks were lost), with 100..149 new.
    await sink.write(delivered(50, 100, 2), dl);
    // A record without an origin leaves the columns NULL.
    await sink.write([accessRecord(1000, '2024-05-01T11:00:00Z')], dl);
    await sink.commit?.({ id: 2, positions: {} });
    await sink.close?.();
    expect(dl.records).toEqual([]);
    const rows = await target.query(
      `SELECT count(*)::int AS n, count(DISTINCT nats_sequence)::int AS d, min(nats_sequence)::int AS lo,
              max(nats_sequence)::int AS hi, count(*) FILTER (WHERE nats_deliveries = 2)::int AS again,
              count(*) FILTER (WHERE nats_subject = 'logs.a')::int AS subjects
         FROM "${target.schema}".access_logs`,
    );
    expect(rows[0]).toEqual({ n: 151, d: 150, lo: 1, hi: 150, again: 50, subjects: 150 });
  });

  it('upserts rollup rows with on_conflict: update, the last row of a key winning', async () => {
    const options = target.options({
      table: 'hits_per_minute',
      record_schema: 'none',
      columns: { window_start: 'timestamptz', path: 'text', requests: 'bigint' },
      time_column: 'window_start',
      partition: 'month',
      unique_key: ['window_start', 'path'],
      on_conflict: 'update',
    });
    const sink = target.sink(options, testContext(target.dataDir), now);
    await sink.open?.();
    const dl = new DeadLetters();
    const w = '2024-05-01T11:00:00Z';
    await sink.write(
      [
        { window_start: w, path: '/a', requests: 1 },
        { window_start: w, path: '/b', requests: 1 },
      ],
      dl,
    );
    await sink.commit?.({ id: 1, positions: {} });
    await sink.write(
      [
        { window_start: w, path: '/a', requests: 5 },
        { window_start: w, path: '/a', requests: 7 },
        { window_start: w, path: '/c', requests: 2, note: 'late' },
      ],
      dl,
    );
    await sink.commit?.({ id: 2, positions: {} });
    await sink.close?.();
    const rows = await target.query(
      `SELECT path, requests::int AS requests, extra FROM "${target.schema}".hits_per_minute ORDER BY path`,
    );
    expect(rows).toEqual([
      { path: '/a', requests: 7, extra: null },
      { path: '/b', requests: 1, extra: null },
      { path: '/c', requests: 2, extra: { note: 'late' } },
    ]);
  });

  it('adds new columns to an existing table and never drops or alters one', async () => {
    const first = target.sink(target.options(), testContext(target.dataDir), now);
    await first.open?.();
    await first.write(batch(0, 10), new DeadLetters());
    await first.commit?.({ id: 1, positions: {} });
    await first.close?.();

    const ctx = testContext(target.dataDir);
    const second = target.sink(target.options({ columns: { country: 'text', status: 'integer' } }), ctx, now);
    await second.open?.();
    await second.write(
      batch(10, 5).map((r) => ({ ...r, country: 'FR' })),
      new DeadLetters(),
    );
    await second.commit?.({ id: 2, positions: {} });
    await second.close?.();
    expect(ctx.logs.some((l) => l.level === 'warn' && l.message.includes('column status is smallint'))).toBe(true);
    const rows = await target.query(
      `SELECT count(*)::int AS n, count(country)::int AS c FROM "${target.schema}".access_logs`,
    );
    expect(rows[0]).toEqual({ n: 15, c: 5 });
  });

  it('asks for an early checkpoint when the uncommitted payload passes max_uncommitted_bytes', async () => {
    const ctx = testContext(target.dataDir);
    const sink = target.sink(target.options({ max_uncommitted_bytes: 65536 }), ctx, now);
    await sink.open?.();
    await sink.write(batch(0, 100), new DeadLetters());
    expect(ctx.checkpointRequests).toBe(0);
    await sink.write(batch(100, 1000), new DeadLetters());
    expect(ctx.checkpointRequests).toBe(1);
    await sink.commit?.({ id: 1, positions: {} });
    await sink.write(batch(1100, 100), new DeadLetters());
    expect(ctx.checkpointRequests).toBe(1);
    await sink.close?.();
  });

  it('plans the DDL of a dry run without changing anything', async () => {
    const sink = target.sink(
      target.options({ retention: '30d', indexes: [{ columns: ['status'], method: 'btree' }] }),
      testContext(target.dataDir),
      now,
    );
    const ddl = await sink.plan?.();
    await sink.close?.();
    const text = (ddl ?? []).join(';\n');
    expect(text).toContain(`CREATE TABLE "${target.schema}"."access_logs" (`);
    expect(text).toContain('"client_ip" inet');
    expect(text).toContain('"status" smallint');
    expect(text).toContain('PARTITION BY RANGE ("timestamp")');
    expect(text).toContain('"access_logs_default" PARTITION OF');
    expect(text).toContain('USING brin ("timestamp")');
    expect(text).toContain('USING btree ("status")');
    expect(text).toContain('"access_logs_p20240501" PARTITION OF');
    expect(text).toContain('"access_logs_p20240504" PARTITION OF');
    expect(text).toContain('etl_checkpoints');
    if (mode === 'embedded') expect(existsSync(join(target.dataDir, 'pgdata'))).toBe(false);
    else expect(await serverQuery('SELECT 1 FROM pg_namespace WHERE nspname = $1', [target.schema])).toEqual([]);
  });

  it('refuses to change the partition granularity of an existing table', async () => {
    const first = target.sink(target.options(), testContext(target.dataDir), now);
    await first.open?.();
    await first.close?.();
    const second = target.sink(target.options({ partition: 'month' }), testContext(target.dataDir), now);
    await expect(second.open?.()).rejects.toThrow(/partition=day.*cannot change/);
    await second.close?.();
  });
});

describe('postgres sink instances opening one new table together', () => {
  it('serialise its DDL: every one opens (scale-out instances start at once)', async () => {
    const target = await Target.create('server');
    try {
      // Distinct pipelines (one per instance), one schema and table none of them has created yet.
      const sinks = ['a', 'b', 'c', 'd'].map((instance) =>
        target.sink(
          target.options({ partition: 'day' }),
          testContext(join(target.dataDir, instance), 'store', `loader-${instance}`),
          now,
        ),
      );
      const opened = await Promise.allSettled(sinks.map((sink) => sink.open?.()));
      for (const sink of sinks) await sink.close?.();
      expect(opened.filter((o) => o.status === 'rejected')).toEqual([]);
    } finally {
      await target.dispose();
    }
  });
});

describe('embedded PostgreSQL', () => {
  it('runs with fsync on (PGlite turns it off)', async () => {
    const target = await Target.create('embedded');
    try {
      const sink = target.sink(target.options(), testContext(target.dataDir), now);
      await sink.open?.();
      await sink.close?.();
      expect(await target.query('SHOW fsync')).toEqual([{ fsync: 'on' }]);
    } finally {
      await target.dispose();
    }
  });
});
