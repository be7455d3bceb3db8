/**
 * A server outage in the middle of a load, through the sink contract: the test's own PostgreSQL is
 * stopped hard and started again; writes stall meanwhile (backpressure, nothing buffered beyond the batch
 * in hand) and every row arrives exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CircuitState, OperatorMetrics, StageSignals } from '../../engine/operator.ts';
import type { EtlRecord } from '../../engine/record.ts';
import { accessRecord, DeadLetters, sinkOptions, testContext } from './helpers.ts';
import { ThrowawayPostgres } from './throwaway.ts';
import { createPostgresSink } from '../../operators/sinks/postgres/postgres.ts';
import pg from 'pg';

const BATCH = 500;
const BATCHES = 60;

/** Counts the sink's reconnection attempts (`etl_postgres_reconnects_total`) and wakes who waits for a count. */
class Reconnects {
  count = 0;
  private readonly waiters: Array<{ n: number; wake: () => void }> = [];

  metrics(): OperatorMetrics {
    return {
      counter: (name) => ({
        inc: (value = 1) => {
          if (name !== 'etl_postgres_reconnects_total') return;
          this.count += value;
          for (const w of this.waiters.filter((w) => w.n <= this.count)) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.wake();
          }
        },
      }),
      gauge: () => ({ set() {} }),
    };
  }

  /** Resolves once `n` attempts have been counted. */
  reach(n: number): Promise<void> {
    if (this.count >= n) return Promise.resolve();
    return new Promise((wake) => this.waiters.push({ n, wake }));
  }
}

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
    const reconnects = new Reconnects();
    // What the runtime's etl_sink_circuit_state and etl_sink_reconnects_total are told.
    const circuit: CircuitState[] = [];
    let reconnected = 0;
    const signals: StageSignals = {
      reconnected: () => reconnected++,
      circuit: (state) => circuit.push(state),
      sourceState: () => {},
    };
    const ctx = { ...testContext('/tmp'), metrics: reconnects.metrics(), signals };
    const sink = createPostgresSink(
      sinkOptions({ url: server.url, reconnect_initial_backoff_ms: 20, reconnect_max_backoff_ms: 200 }),
      ctx,
      { env: {} },
    );
    await sink.open?.();
    const dl = new DeadLetters();
    let snapshot = 0;
    /**
     * Writes while the server is down: the write must still be waiting after the sink has tried to
     * reconnect a few times (it waits instead of buffering), and complete once the server is back.
     */
    const stalledWrite = async (records: EtlRecord[]) => {
      const write = Promise.resolve(sink.write(records, dl));
      let done = false;
      void write.then(() => {
        done = true;
      });
      await Promise.race([write, reconnects.reach(reconnects.count + 3)]);
      expect(done, 'a write while the server is down must wait for it').toBe(false);
      await server.start();
      await write;
    };
    for (let b = 0; b < BATCHES; b++) {
      const records = Array.from({ length: BATCH }, (_, i) => accessRecord(b * BATCH + i, new Date().toISOString()));
      if (b === 20 || b === 40) {
        // 20: mid-transaction, rows since the last commit are lost with the connection and replayed.
        // 40: right after a commit (at 39), the next transaction cannot begin.
        await server.stop();
        await stalledWrite(records);
      } else {
        await sink.write(records, dl);
      }
      if (b % 7 === 6 || b === 39) await sink.commit?.({ id: ++snapshot, positions: { batch: b } });
    }
    await sink.commit?.({ id: ++snapshot, positions: { batch: BATCHES } });
    expect((await sink.committedCheckpoint?.())?.id).toBe(snapshot);
    await sink.close?.();
    expect(dl.records).toEqual([]);
    const said = (text: string) => ctx.logs.filter((l) => l.message.includes(text)).length;
    expect(said('pausing until it is back')).toBe(2);
    expect(said('PostgreSQL is back')).toBe(2);
    expect(circuit).toEqual(['open', 'closed', 'open', 'closed']);
    expect(reconnected).toBe(reconnects.count);

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
  it('gives up with a clear error once a server it had reached stays away past max_outage_seconds', async () => {
    const reconnects = new Reconnects();
    const ctx = { ...testContext('/tmp'), metrics: reconnects.metrics() };
    const sink = createPostgresSink(
      sinkOptions({
        url: server.url,
        max_outage_seconds: 0.5,
        reconnect_initial_backoff_ms: 20,
        reconnect_max_backoff_ms: 50,
      }),
      ctx,
      { env: {} },
    );
    await sink.open?.();
    const dl = new DeadLetters();
    try {
      await sink.write([accessRecord(0, new Date().toISOString())], dl);
      await sink.commit?.({ id: 1, positions: { batch: 0 } });
      await server.stop();
      const started = Date.now();
      const error = await Promise.resolve(sink.write([accessRecord(1, new Date().toISOString())], dl)).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      // Unlike a server never reached (faults.test.ts), a lost one is waited for first.
      expect(reconnects.count).toBeGreaterThan(1);
      expect(Date.now() - started).toBeGreaterThanOrEqual(500);
      expect(error?.message).toMatch(/unreachable for more than max_outage_seconds \(0\.5s\)/);
    } finally {
      await server.start();
      await sink.close?.();
    }
  });
});
