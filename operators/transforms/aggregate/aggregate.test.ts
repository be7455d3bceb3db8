import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { EtlRecord } from '../../../engine/record.ts';
import { loadPipelinesFromString } from '../../../engine/config/load.ts';
import { accessRecordSchema } from '../../shared/log-records.ts';
import definition from './index.ts';
import { Harness, options } from './test-support.ts';

const T0 = Date.parse('2026-12-05T10:00:00Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();
const req = (ms: number, path: string, extra: Partial<EtlRecord> = {}): EtlRecord => ({
  timestamp: at(ms),
  path,
  status: 200,
  bytes: 100,
  request_time_ms: 10,
  ...extra,
});

const perMinute = {
  window_seconds: 60,
  group_by: ['path'],
  aggregates: {
    requests: { fn: 'count' },
    errors: { fn: 'count', field: 'status', between: [500, 599] },
    bytes_sum: { fn: 'sum', field: 'bytes' },
    bytes_min: { fn: 'min', field: 'bytes' },
    bytes_max: { fn: 'max', field: 'bytes' },
    clients: { fn: 'distinct', field: 'client_ip' },
    latency_avg: { fn: 'avg', field: 'request_time_ms' },
    latency_p50: { fn: 'p50', field: 'request_time_ms' },
    latency_p95: { fn: 'p95', field: 'request_time_ms' },
    latency_p99: { fn: 'p99', field: 'request_time_ms' },
  },
};

describe('tumbling windows', () => {
  it('emit each group once the watermark passes the window end, with every aggregate', () => {
    const h = new Harness(perMinute, 5000);
    const latencies = Array.from({ length: 100 }, (_, i) => i + 1);
    h.process(
      latencies.map((ms, i) =>
        req(i * 100, i % 2 === 0 ? '/a' : '/b', {
          bytes: i,
          status: i % 10 === 0 ? 503 : 200,
          request_time_ms: ms,
          client_ip: `203.0.113.${i % 7}`,
        }),
      ),
    );
    expect(h.emitted).toEqual([]); // the watermark (9.9 s − 5 s) is inside the first minute
    h.process([req(64_999, '/a')]); // watermark 59.999 s: not yet
    expect(h.emitted).toEqual([]);
    h.process([req(65_000, '/a')]); // watermark 60 s: the first minute closes
    expect(h.emitted.map((r) => r.path)).toEqual(['/a', '/b']);
    const a = h.emitted[0] as EtlRecord;
    const aLatencies = latencies.filter((_, i) => i % 2 === 0);
    expect(a).toMatchObject({
      window_start: at(0),
      window_end: at(60_000),
      path: '/a',
      requests: 50,
      errors: 10,
      bytes_sum: aLatencies.reduce((s, _, j) => s + 2 * j, 0),
      bytes_min: 0,
      bytes_max: 98,
      clients: 7, // i even, i % 7: every residue
      latency_avg: aLatencies.reduce((s, v) => s + v, 0) / 50,
    });
    const quantile = (q: number) => aLatencies[Math.floor(q * 49)] as number;
    for (const [name, q] of [
      ['latency_p50', 0.5],
      ['latency_p95', 0.95],
      ['latency_p99', 0.99],
    ] as const) {
      expect(Math.abs((a[name] as number) - quantile(q)) / quantile(q)).toBeLessThanOrEqual(0.01);
    }
  });

  it('give quantiles within 1% of the value of their rank past the values a group keeps as they are', () => {
    const h = new Harness(perMinute, 0);
    const values = Array.from({ length: 5000 }, (_, i) => 1 + ((i * 7919) % 5000) / 7);
    h.process(values.map((v, i) => req(i, '/a', { request_time_ms: v })));
    h.flush();
    const sorted = [...values].sort((a, b) => a - b);
    const row = h.emitted[0] as EtlRecord;
    for (const [name, q] of [
      ['latency_p50', 0.5],
      ['latency_p95', 0.95],
      ['latency_p99', 0.99],
    ] as const) {
      const exact = sorted[Math.floor(q * (sorted.length - 1))] as number;
      expect(Math.abs((row[name] as number) - exact) / exact).toBeLessThanOrEqual(0.01);
      expect(row[name]).not.toBe(exact); // a sketch's estimate, not the values
    }
  });

  it('fill aggregates of a group without numbers with null (distinct counts with 0), and group records lacking the field under null', () => {
    const h = new Harness(perMinute, 0);
    h.process([{ timestamp: at(1000), status: 200, bytes: null, request_time_ms: null }]);
    h.flush();
    expect(h.emitted).toEqual([
      {
        window_start: at(0),
        window_end: at(60_000),
        path: null,
        requests: 1,
        errors: 0,
        bytes_sum: 0,
        bytes_min: null,
        bytes_max: null,
        clients: 0, // no value: none distinct
        latency_avg: null,
        latency_p50: null,
        latency_p95: null,
        latency_p99: null,
      },
    ]);
  });

  it('close on a tick once the watermark has moved, without a record', () => {
    let watermark: number | undefined;
    const h = new Harness(perMinute, 0);
    h.ctx.watermark = () => watermark; // the runtime's, moved by idle time
    h.process([req(1000, '/a')]);
    h.tick();
    expect(h.emitted).toEqual([]);
    watermark = T0 + 60_000;
    h.tick();
    expect(h.emitted.map((r) => [r.window_start, r.requests])).toEqual([[at(0), 1]]);
  });

  it('flush every open window at the end of the input', () => {
    const h = new Harness(perMinute, 10_000);
    h.process([req(1000, '/a'), req(61_000, '/a'), req(125_000, '/b')]);
    h.flush();
    expect(h.emitted.map((r) => [r.window_start, r.path, r.requests])).toEqual([
      [at(0), '/a', 1],
      [at(60_000), '/a', 1],
      [at(120_000), '/b', 1],
    ]);
  });

  it('send records without an event time to dead_letter', () => {
    const h = new Harness(perMinute, 0);
    h.process([{ path: '/a' }, { path: '/a', timestamp: 'yesterday' }]);
    expect(h.deadLetters.map((d) => d.reason)).toEqual([
      expect.stringContaining('no event time in `timestamp`'),
      expect.stringContaining('no event time in `timestamp`'),
    ]);
  });
});

describe('late records', () => {
  it('update a closed window within allowed_lateness_seconds; later ones go to dead_letter', () => {
    const h = new Harness({ ...perMinute, allowed_lateness_seconds: 30 }, 0);
    h.process([req(1000, '/a'), req(2000, '/a')]);
    h.process([req(60_000, '/b')]); // the first minute closes
    expect(h.emitted.map((r) => [r.path, r.requests])).toEqual([['/a', 2]]);
    h.process([req(3000, '/a', { bytes: 5 })]); // late, within 30 s: emitted again, corrected
    expect(h.emitted.map((r) => [r.path, r.requests, r.bytes_sum])).toEqual([
      ['/a', 2, 200],
      ['/a', 3, 205],
    ]);
    expect(h.table.get(`${at(0)}|/a`)?.requests).toBe(3);
    h.process([req(90_000, '/b')]); // watermark 90 s: the first minute is dropped
    h.process([req(4000, '/a')]);
    expect(h.table.get(`${at(0)}|/a`)?.requests).toBe(3);
    expect(h.deadLetters).toHaveLength(1);
    expect(h.deadLetters[0]?.reason).toContain('too late');
    expect(h.ctx.values.get('etl_aggregate_too_late_records_total')).toBe(1);
  });

  it('never count a record as too late because of later records in its own batch', () => {
    const h = new Harness(perMinute, 0);
    h.process(Array.from({ length: 120 }, (_, i) => req(i * 60_000, '/a')));
    h.flush();
    expect(h.deadLetters).toEqual([]);
    expect(h.emitted.map((r) => r.requests)).toEqual(Array.from({ length: 120 }, () => 1));
  });
});

describe('sliding windows', () => {
  it('count a record in every window of window_seconds that holds it, one starting each slide_seconds', () => {
    const h = new Harness({ ...perMinute, window_seconds: 180, slide_seconds: 60 }, 0);
    h.process([req(125_000, '/a'), req(190_000, '/a')]);
    h.flush();
    expect(h.emitted.map((r) => [r.window_start, r.window_end, r.requests])).toEqual([
      [at(0), at(180_000), 1],
      [at(60_000), at(240_000), 2],
      [at(120_000), at(300_000), 2],
      [at(180_000), at(360_000), 1],
    ]);
  });
});

describe('distinct counts', () => {
  // The README's example: distinct clients per endpoint per hour.
  const perHour = {
    window_seconds: 3600,
    allowed_lateness_seconds: 600,
    group_by: ['endpoint'],
    aggregates: { requests: { fn: 'count' }, clients: { fn: 'distinct', field: 'client_ip' } },
  };
  const byEndpoint = (r: EtlRecord) => `${r.window_start}|${r.endpoint}`;
  // An hour: 20,000 requests to /users/:id from 5,000 clients, 3 clients on /health, some without an address.
  const hour = Array.from({ length: 20_000 }, (_, i) => ({
    timestamp: at(i * 150),
    endpoint: i % 10 === 0 ? '/health' : '/users/:id',
    client_ip: i % 10 === 0 ? `10.0.0.${i % 3}` : i % 97 === 0 ? null : `198.51.${(i % 5000) >>> 8}.${i % 256}`,
  }));
  const expected = (endpoint: string) =>
    new Set(hour.filter((r) => r.endpoint === endpoint && r.client_ip !== null).map((r) => r.client_ip)).size;

  it('count the distinct values of a field per window and group: exactly when few, within 0.81% × 5 when many', () => {
    const h = new Harness(perHour, 0, undefined, byEndpoint);
    for (let i = 0; i < hour.length; i += 500) h.process(hour.slice(i, i + 500));
    h.flush();
    const rows = new Map([...h.table.values()].map((r) => [r.endpoint, r]));
    expect(rows.get('/health')).toMatchObject({ requests: 2000, clients: 3 });
    const users = rows.get('/users/:id') as EtlRecord;
    expect(expected('/users/:id')).toBeGreaterThan(4000);
    expect(Number.isInteger(users.clients)).toBe(true);
    expect(Math.abs((users.clients as number) / expected('/users/:id') - 1)).toBeLessThanOrEqual(5 * 0.0081);
  });

  it('restore from a checkpoint and end with the counts of an uninterrupted run', () => {
    const whole = new Harness(perHour, 0, undefined, byEndpoint);
    for (let i = 0; i < hour.length; i += 700) whole.process(hour.slice(i, i + 700));
    whole.flush();
    const first = new Harness(perHour, 0, undefined, byEndpoint);
    first.process(hour.slice(0, 9000));
    const saved = first.save();
    // The keyed state carries the sketch of 9000 records' clients as registers in base64, not the addresses.
    expect(JSON.stringify(saved.keyed).length).toBeLessThan(30_000);
    first.process(hour.slice(9000, 12_000)); // lost in a crash: read again by the rerun
    const rerun = new Harness(perHour, 0, saved, byEndpoint);
    for (let i = 9000; i < hour.length; i += 333) rerun.process(hour.slice(i, i + 333));
    rerun.flush();
    expect(new Map([...rerun.table].sort())).toEqual(new Map([...whole.table].sort()));
  });

  it('in sliding windows, count each window’s own values', () => {
    const h = new Harness(
      { ...perHour, window_seconds: 120, slide_seconds: 60, allowed_lateness_seconds: 0 },
      0,
      undefined,
      byEndpoint,
    );
    h.process([
      { timestamp: at(10_000), endpoint: '/a', client_ip: 'x' },
      { timestamp: at(70_000), endpoint: '/a', client_ip: 'y' },
      { timestamp: at(80_000), endpoint: '/a', client_ip: 'x' },
    ]);
    h.flush();
    expect(h.emitted.map((r) => [r.window_start, r.clients])).toEqual([
      [at(-60_000), 1],
      [at(0), 2],
      [at(60_000), 2],
    ]);
  });
});

describe('top-N', () => {
  it('emits the first n groups of a window by an aggregate with their rank, again when a late record reorders them', () => {
    const raw = { ...perMinute, allowed_lateness_seconds: 60, top: { n: 2, by: 'requests' } };
    const h = new Harness(raw, 0, undefined, (r) => `${r.window_start}|${r.rank}`);
    h.process([
      ...['/a', '/a', '/a', '/b', '/b', '/c', '/c', '/d'].map((path, i) => req(i * 1000, path)),
      req(60_000, '/z'), // closes the first minute
    ]);
    // `/b` and `/c` tie at 2: the group key decides.
    expect(h.emitted.map((r) => [r.rank, r.path, r.requests])).toEqual([
      [1, '/a', 3],
      [2, '/b', 2],
    ]);
    h.process([req(9000, '/c'), req(9500, '/c')]); // late: `/c` goes first
    expect(h.emitted.slice(2).map((r) => [r.rank, r.path, r.requests])).toEqual([
      [1, '/c', 4],
      [2, '/a', 3],
    ]);
    expect([...h.table.values()].map((r) => [r.rank, r.path])).toEqual([
      [1, '/c'],
      [2, '/a'],
    ]);
  });
});

describe('state', () => {
  it('a rerun from a snapshot ends with the rows of an uninterrupted run', () => {
    // About 200 records per group and minute: their quantiles come from sketches, which the state carries.
    const records = Array.from({ length: 2000 }, (_, i) =>
      req(i * 100 + ((i * 7919) % 3000), `/p${i % 3}`, { request_time_ms: ((i * 37) % 1000) + 0.25, bytes: i }),
    );
    const whole = new Harness(perMinute, 5000);
    for (let i = 0; i < records.length; i += 50) whole.process(records.slice(i, i + 50));
    whole.flush();

    // Crash after the checkpoint at 250 records: records up to 300 were processed, the rerun replays from 250.
    const first = new Harness(perMinute, 5000);
    first.process(records.slice(0, 950));
    const saved = first.save();
    first.process(records.slice(950, 1100));
    const rerun = new Harness(perMinute, 5000, saved);
    for (let i = 950; i < records.length; i += 70) rerun.process(records.slice(i, i + 70));
    rerun.flush();
    const table = new Map([...first.table, ...rerun.table]);
    expect(new Map([...table].sort())).toEqual(new Map([...whole.table].sort()));
    expect(whole.table.size).toBe(12);
    expect([...whole.table.values()].every((r) => typeof r.latency_p95 === 'number')).toBe(true);
  });
});

describe('changed options', () => {
  it('refuse the state made with other groups or aggregates, saying how to go on', () => {
    const first = new Harness(perMinute, 0);
    first.process([req(1000, '/a')]);
    const saved = first.save();
    expect(() => new Harness({ ...perMinute, group_by: ['status'] }, 0, saved)).toThrow(
      /state of aggregate stage was made with other .* rerun with --forget stage/,
    );
    // Lateness and top-N only change what is emitted: the state still fits.
    expect(() => new Harness({ ...perMinute, allowed_lateness_seconds: 60 }, 0, saved)).not.toThrow();
  });
});

/** Records with event times in a few minutes, each at most `disorder` ms out of order, over groups. */
const workload = (disorder: number) =>
  fc
    .array(
      fc.record({
        step: fc.integer({ min: 0, max: 4000 }),
        shift: fc.integer({ min: 0, max: disorder }),
        path: fc.constantFrom('/a', '/b'),
        client: fc.option(fc.nat({ max: 400 }), { nil: null }),
        status: fc.constantFrom(200, 404, 500, 503),
        bytes: fc.option(fc.integer({ min: 0, max: 1e6 }), { nil: null }),
        // Milliseconds with a fractional part, as request_time_ms holds: sums of them round differently by order.
        latency: fc.option(
          fc.integer({ min: 0, max: 10_000_000 }).map((us) => us / 1000),
          { nil: null },
        ),
      }),
      { minLength: 1, maxLength: 300 },
    )
    .map((items) => {
      let time = 0;
      return items.map((it) => {
        time += it.step;
        return req(time - it.shift, it.path, {
          status: it.status,
          bytes: it.bytes,
          request_time_ms: it.latency,
          client_ip: it.client === null ? null : `10.0.${it.client >>> 8}.${it.client & 255}`,
        });
      });
    });

const run = (records: EtlRecord[], cuts: number[], raw: Record<string, unknown>, latenessMs: number) => {
  const h = new Harness(raw, latenessMs);
  let from = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < records.length)].sort((a, b) => a - b)) {
    h.process(records.slice(from, cut));
    from = cut;
  }
  h.process(records.slice(from));
  h.flush();
  return { table: new Map([...h.table].sort()), dead: h.deadLetters.length };
};

describe('properties', () => {
  const lateness = 10_000;
  for (const [name, raw] of [
    ['tumbling', { ...perMinute, allowed_lateness_seconds: 5 }],
    ['sliding', { ...perMinute, window_seconds: 120, slide_seconds: 30 }],
  ] as const) {
    it(`${name}: results do not depend on batch boundaries nor on the order of records within the lateness`, () => {
      fc.assert(
        fc.property(
          workload(lateness / 2),
          fc.array(fc.nat({ max: 300 }), { maxLength: 12 }),
          fc.array(fc.nat({ max: 300 }), { maxLength: 12 }),
          fc.integer(),
          (records, cutsA, cutsB, seed) => {
            // Another order, as far from this one as the lateness allows: sorted on the event time plus a
            // jitter below half the lateness, so that no record comes after one later than it by more.
            let s = seed;
            const jittered = records.map((record) => {
              s = (s * 1103515245 + 12345) & 0x7fffffff;
              return { record, key: Date.parse(record.timestamp as string) + (s % (lateness / 2)) };
            });
            const shuffled = jittered.sort((a, b) => a.key - b.key).map((j) => j.record);
            const one = run(records, [], raw, lateness);
            expect(one.dead).toBe(0);
            expect(run(records, cutsA, raw, lateness)).toEqual(one);
            expect(run(shuffled, cutsB, raw, lateness)).toEqual(one);
            // And they are the aggregates of the records: counts and exact sums by window and group.
            const requests = [...one.table.values()].reduce((n, r) => n + (r.requests as number), 0);
            const windowsPerRecord = 'slide_seconds' in raw ? 4 : 1;
            expect(requests).toBe(records.length * windowsPerRecord);
            // Distinct counts are exact at these sizes (at most 300 records a window and group; 256 distinct).
            for (const row of one.table.values()) {
              const inWindow = records.filter(
                (r) =>
                  r.path === row.path &&
                  (r.timestamp as string) >= (row.window_start as string) &&
                  (r.timestamp as string) < (row.window_end as string) &&
                  r.client_ip !== null,
              );
              const distinct = new Set(inWindow.map((r) => r.client_ip)).size;
              if (distinct <= 256) expect(row.clients).toBe(distinct);
            }
          },
        ),
        { numRuns: 60 },
      );
    });
  }
});

describe('definition', () => {
  const problems = (raw: Record<string, unknown>) =>
    (definition.validate?.(options(raw), { inputSchema: accessRecordSchema }) ?? []).map((p) => [
      p.path.join('.'),
      p.message,
    ]);

  it('refuses names that collide, quantities without a field, a slide that does not divide, non-numeric fields', () => {
    expect(problems(perMinute)).toEqual([]);
    expect(
      problems({
        window_seconds: 60,
        slide_seconds: 25,
        group_by: ['path', 'window_start'],
        aggregates: {
          path: { fn: 'count' },
          total: { fn: 'sum' },
          methods: { fn: 'max', field: 'method' },
          odd: { fn: 'sum', field: 'bytes', between: [1, 2] },
          visitors: { fn: 'distinct' },
        },
        top: { n: 3, by: 'requests' },
      }),
    ).toEqual([
      ['slide_seconds', 'slide_seconds (25) must divide window_seconds (60)'],
      ['top.by', '`requests` is not one of the aggregates (path, total, methods, odd, visitors)'],
      ['group_by.1', '`window_start` is a field the aggregate emits itself'],
      ['aggregates.path', '`path` is also a group_by field'],
      ['aggregates.total', '`sum` needs a `field`'],
      ['aggregates.methods.field', '`method` is not numeric (string | null): `max` needs numbers'],
      ['aggregates.odd.between', '`between` applies to `count` of a `field`'],
      ['aggregates.visitors', '`distinct` needs a `field`'],
    ]);
  });

  it('declares the fields its options name, and typed output fields', () => {
    expect(definition.fields?.(options(perMinute)).map((u) => [u.path.join('.'), u.field])).toContainEqual([
      'aggregates.latency_p95.field',
      'request_time_ms',
    ]);
    const out = definition.outputSchemas?.(options(perMinute), accessRecordSchema).default;
    expect(out?.additionalProperties).toBe(false);
    expect(out?.properties?.requests).toEqual({ type: 'integer', minimum: 0 });
    // A distinct count of a text field: an integer (a bigint column).
    expect(out?.properties?.clients).toMatchObject({ type: 'integer', minimum: 0 });
    expect(out?.properties?.bytes_sum).toEqual({ type: 'integer' });
    expect(out?.properties?.latency_p95).toEqual({ type: ['number', 'null'] });
    expect(out?.properties?.path).toMatchObject({ type: ['string', 'null'] });
  });
});

describe('etl validate', () => {
  const pipeline = (sink: string, operator = '') => `apiVersion: etl/v1
kind: Pipeline
metadata: { name: rollup }
spec:
  sources:
    logs: { type: file, paths: [access.log] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
    per_minute:
      type: aggregate
      inputs: [parsed]
      window_seconds: 60
      group_by: [path, method]${operator}
      aggregates: { requests: { fn: count }, bytes_sum: { fn: sum, field: byts } }
  sinks:
    rollup:
      type: postgres
      inputs: [per_minute]
      table: per_minute
      time_column: window_start
${sink}
`;
  const diagnostics = async (yaml: string) =>
    (await loadPipelinesFromString(yaml, 'rollup.yaml')).diagnostics.map(
      (d) => `${d.line}:${d.column} ${d.severity} ${d.code} ${d.message}`,
    );

  it('points at a misspelt field, and at a sink that does not key the rows as the aggregate emits them', async () => {
    expect(
      await diagnostics(pipeline('      unique_key: [window_start, path, method]\n      on_conflict: update')),
    ).toEqual(['14:75 error ETL_GRAPH_UNKNOWN_FIELD unknown field `byts` — did you mean `bytes`?']);
    const fixed = (yaml: string) => yaml.replace('field: byts', 'field: bytes');
    expect(
      await diagnostics(fixed(pipeline('      unique_key: [window_start, path]\n      on_conflict: update'))),
    ).toEqual([
      '21:19 warning ETL_GRAPH_ROW_KEY `per_minute` identifies its rows by [window_start, path, method], not by [window_start, path]',
    ]);
    expect(await diagnostics(fixed(pipeline('      partition: day')))).toEqual([
      '16:5 warning ETL_GRAPH_ROW_KEY `per_minute` emits a row again when it changes, and `rollup` would store each one as a new row',
    ]);
    expect(
      await diagnostics(fixed(pipeline('      unique_key: [window_start, path, method]\n      on_conflict: ignore'))),
    ).toEqual([
      '21:19 warning ETL_GRAPH_ROW_KEY `rollup` keeps the first row of a key: the corrections `per_minute` emits would be dropped',
    ]);
    const top = '\n      top: { n: 5, by: requests }';
    expect(
      await diagnostics(fixed(pipeline('      unique_key: [window_start, rank]\n      on_conflict: update', top))),
    ).toEqual([]);
  });
});
