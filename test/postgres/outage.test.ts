/**
 * A server outage in the middle of a load, through the sink contract: the test's own PostgreSQL is
 * stopped hard and started again; writes stall meanwhile (backpressure, nothing buffered beyond the batch
 * in hand) and every row arrives exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../../engine/retry.ts';
import { accessRecord, DeadLetters, sinkOptions, testContext } from './helpers.ts';
import { ThrowawayPostgres } from './throwaway.ts';
import { createPostgresSink } from '../../operators/sinks/postgres/postgres.ts';
import pg from 'pg';

const BATCH = 500;
const BATCHES = 60;

describe('outage of the server (throwaway PostgreSQL)', () => {
  let server: ThrowawayPostgres;
  beforeAll(async () => {
    server = await ThrowawayPostgres.create();
    await server.start();
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('stalls writes while the server is down and loses or duplicates nothing', async () => {
    const ctx = testContext('/tmp');
    const sink = createPostgresSink(
      sinkOptions({ url: server.url, reconnect_initial_backoff_ms: 20, reconnect_max_backoff_ms: 200 }),
      ctx,
      { env: {} },
    );
    await sink.open?.();
    const dl = new DeadLetters();
    let snapshot = 0;
    let stalledMs = 0;
    for (let b = 0; b < BATCHES; b++) {
      const records = Array.from({ length: BATCH }, (_, i) => accessRecord(b * BATCH + i, new Date().toISOString()));
      if (b === 20) await server.stop();
      if (b === 20 || b === 40) {
        // The write cannot complete while the server is away: it waits instead of buffering.
        const write = Promise.resolve(sink.write(records, dl));
        let done = false;
        void write.then(() => {
          done = true;
        });
        const started = Date.now();
        await sleep(1000);
        expect(done).toBe(false);
        if (b === 20) await server.start();
        await write;
        stalledMs += Date.now() - started;
        if (b === 40) expect(done).toBe(true);
      } else {
        await sink.write(records, dl);
      }
      if (b === 39) {
        await sink.commit?.({ id: ++snapshot, positions: { batch: b } });
        await server.stop();
        setTimeout(() => void server.start(), 1500);
      }
      if (b % 7 === 6 && b !== 39) await sink.commit?.({ id: ++snapshot, positions: { batch: b } });
    }
    await sink.commit?.({ id: ++snapshot, positions: { batch: BATCHES } });
    expect(await sink.committedSnapshotId?.()).toBe(snapshot);
    await sink.close?.();
    expect(dl.records).toEqual([]);
    expect(stalledMs).toBeGreaterThan(2000);
    expect(ctx.logs.some((l) => l.message.includes('PostgreSQL is back'))).toBe(true);

    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    try {
      const { rows } = await client.query(
        'SELECT count(*)::int AS n, count(DISTINCT path)::int AS d, max(bytes)::bigint AS top FROM public.access_logs',
      );
      expect(rows[0]).toEqual({ n: BATCH * BATCHES, d: BATCH * BATCHES, top: String((BATCH * BATCHES - 1) * 10) });
    } finally {
      await client.end();
    }
  });
});
