import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadPipelinesFromString } from '../../../engine/config/load.ts';
import type { PortRecords } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import { createAjv, createRecordAjv } from '../../../engine/schema/ajv.ts';
import { recordingContext } from '../../../test/support/context.ts';
import { accessRecordSchema } from '../../shared/log-records.ts';
import { AnomaliesTransform, statusClass } from './anomalies.ts';
import definition from './index.ts';
import { type AnomaliesOptions, schema } from './schema.ts';
import { KeyedStore } from '../../../test/support/keyed-store.ts';

const T0 = Date.parse('2026-03-01T10:00:00.000Z');
const MINUTE = 60_000;

function options(overrides: Partial<AnomaliesOptions> = {}): AnomaliesOptions {
  const opts: Record<string, unknown> = { ...overrides };
  createAjv().compile(schema)(opts);
  return opts as AnomaliesOptions;
}

/** A transform whose watermark the test sets (`clock.watermark`), with keyed state in `store`. */
function make(opts: AnomaliesOptions, store = new KeyedStore(), readPorts = ['default', 'anomalies']) {
  const clock: { watermark: number | undefined } = { watermark: undefined };
  const ctx = recordingContext({
    readPorts: new Set(readPorts),
    watermark: () => clock.watermark,
    keyed: <V>(name: string) => store.keyed<V>(name),
  });
  const transform = new AnomaliesTransform(opts, ctx);
  transform.restore(store.snapshot);
  return { ctx, transform, store, clock };
}

const hit = (ip: string, at: number, status = 200, path = '/login'): EtlRecord => ({
  client_ip: ip,
  path,
  status,
  timestamp: new Date(at).toISOString(),
});

/** `n` requests of `ip` spread over minute `m` (from T0). */
const minute = (ip: string, m: number, n: number, status = 200) =>
  Array.from({ length: n }, (_, i) => hit(ip, T0 + m * MINUTE + Math.floor((i * MINUTE) / n), status));

const anomaliesOf = (ports: PortRecords) => ports.anomalies ?? [];

describe('anomalies', () => {
  it('flags a key whose count breaks from its own baseline, once the watermark closes the bucket', () => {
    const { transform, clock } = make(options());
    const found: EtlRecord[] = [];
    // 30 minutes of 10 to 14 requests a minute from one client, 50 a minute from another.
    for (let m = 0; m < 30; m++) {
      const ports = transform.process([...minute('10.0.0.1', m, 10 + (m % 5)), ...minute('10.0.0.2', m, 50)]);
      expect(ports.default).toHaveLength(10 + (m % 5) + 50); // records pass on unchanged
      clock.watermark = T0 + (m + 1) * MINUTE;
      found.push(...anomaliesOf(transform.tick()));
    }
    expect(found).toEqual([]);
    // Minute 30: the first client sends 90 requests, the second its usual 50.
    transform.process([...minute('10.0.0.1', 30, 90), ...minute('10.0.0.2', 30, 50)]);
    clock.watermark = T0 + 31 * MINUTE - 1;
    expect(anomaliesOf(transform.tick())).toEqual([]); // the bucket is not closed yet
    clock.watermark = T0 + 31 * MINUTE;
    const [anomaly, ...more] = anomaliesOf(transform.tick());
    expect(more).toEqual([]);
    expect(anomaly).toMatchObject({
      client_ip: '10.0.0.1',
      path: '/login',
      status_class: '2xx',
      anomaly_bucket_start: new Date(T0 + 30 * MINUTE).toISOString(),
      anomaly_bucket_seconds: 60,
      anomaly_observed: 90,
      anomaly_direction: 'up',
      anomaly_baseline_buckets: 30,
    });
    expect(anomaly?.anomaly_baseline).toBeGreaterThan(10);
    expect(anomaly?.anomaly_baseline).toBeLessThan(14);
    expect(anomaly?.anomaly_score).toBeGreaterThanOrEqual(4);
  });

  it('tells in the run summary what it counted and flagged, and when the data is too thin to judge', () => {
    const { transform, clock } = make(options());
    expect(transform.summarize()).toBeUndefined(); // nothing seen
    for (let m = 0; m < 30; m++) {
      transform.process([...minute('10.0.0.1', m, 10), ...minute('10.0.0.2', m, 50)]);
      clock.watermark = T0 + (m + 1) * MINUTE;
      transform.tick();
    }
    transform.process([...minute('10.0.0.1', 30, 90), { ...hit('10.0.0.3', T0), timestamp: null }]);
    clock.watermark = T0 + 31 * MINUTE;
    transform.tick();
    transform.process([hit('10.0.0.1', T0 + 5 * MINUTE)]); // for a bucket closed long ago
    expect(transform.summarize()?.lines).toEqual([
      '1 anomaly flagged over 1,890 records counted in 60 s buckets, 2 keys held',
      '1 record arrived for buckets already closed, not counted',
      '1 record without a time in timestamp, not counted',
    ]);

    const thin = make(options({ min_count: 20 }));
    for (let m = 0; m < 10; m++) {
      thin.transform.process(minute('10.0.0.1', m, 3));
      thin.clock.watermark = T0 + (m + 1) * MINUTE;
      thin.transform.tick();
    }
    expect(thin.transform.summarize()?.lines).toEqual([
      '0 anomalies flagged over 30 records counted in 60 s buckets, 1 key held',
      'no closed bucket of a key reached min_count (20; the busiest held 3): too few requests per key and bucket ' +
        'to judge; lengthen bucket_seconds or lower min_count',
    ]);
  });

  it('keys by status class: a burst of 5xx is its own key, flagged against its own (empty) past', () => {
    const { transform, clock } = make(options({ warmup_buckets: 5 }));
    const found: EtlRecord[] = [];
    for (let m = 0; m < 10; m++) {
      transform.process([...minute('10.0.0.1', m, 30), ...(m === 0 ? minute('10.0.0.1', m, 1, 503) : [])]);
      clock.watermark = T0 + (m + 1) * MINUTE;
      found.push(...anomaliesOf(transform.tick()));
    }
    transform.process([...minute('10.0.0.1', 10, 30), ...minute('10.0.0.1', 10, 40, 503)]);
    clock.watermark = T0 + 11 * MINUTE;
    found.push(...anomaliesOf(transform.tick()));
    expect(found.map((a) => [a.status_class, a.anomaly_observed])).toEqual([['5xx', 40]]);
  });

  it('does not flag before warmup_buckets, nor below min_count', () => {
    const { transform, clock } = make(options({ warmup_buckets: 10, min_count: 20 }));
    const found: EtlRecord[] = [];
    for (let m = 0; m < 5; m++) transform.process(minute('10.0.0.1', m, 2));
    transform.process(minute('10.0.0.1', 5, 200)); // within warm-up
    for (let m = 6; m < 30; m++) transform.process(minute('10.0.0.2', m, 1));
    transform.process(minute('10.0.0.2', 30, 15)); // 15× its baseline, under min_count
    clock.watermark = T0 + 40 * MINUTE;
    found.push(...anomaliesOf(transform.tick()));
    expect(found).toEqual([]);
  });

  it('with direction both, flags a busy key going silent when its bucket closes', () => {
    const { transform, clock } = make(options({ direction: 'both' }));
    for (let m = 0; m < 20; m++) transform.process(minute('10.0.0.1', m, 40));
    clock.watermark = T0 + 20 * MINUTE;
    expect(anomaliesOf(transform.tick())).toEqual([]);
    // Minute 20: not one request from it; another client's records move event time on.
    transform.process(minute('10.0.0.9', 20, 1));
    clock.watermark = T0 + 21 * MINUTE;
    const [drop] = anomaliesOf(transform.tick());
    expect(drop).toMatchObject({ client_ip: '10.0.0.1', anomaly_observed: 0, anomaly_direction: 'down' });
    expect(drop?.anomaly_score).toBeLessThanOrEqual(-4);
  });

  it('counts records for closed buckets as late, passes them on, and says so once', () => {
    const { transform, clock, ctx } = make(options());
    transform.process(minute('10.0.0.1', 0, 5));
    clock.watermark = T0 + 2 * MINUTE;
    transform.tick();
    const ports = transform.process([...minute('10.0.0.1', 1, 3), hit('10.0.0.1', T0 + 2 * MINUTE)]);
    expect(ports.default).toHaveLength(4);
    expect(ctx.values.get('etl_anomalies_late_records_total')).toBe(3);
    transform.process(minute('10.0.0.1', 0, 1));
    expect(ctx.values.get('etl_anomalies_late_records_total')).toBe(4);
    expect(ctx.logs.filter((l) => l.message.includes('already closed'))).toHaveLength(1);
  });

  it('logs the anomalies when no stage reads the port, rather than dropping them unseen', () => {
    const { transform, clock, ctx } = make(options({ warmup_buckets: 2, min_count: 5 }), new KeyedStore(), ['default']);
    for (let m = 0; m < 5; m++) transform.process(minute('10.0.0.1', m, 2));
    transform.process(minute('10.0.0.1', 5, 60));
    clock.watermark = T0 + 6 * MINUTE;
    expect(transform.tick()).toEqual({ default: [] });
    const logged = ctx.logs.filter((l) => l.message.startsWith('anomaly (no stage reads stage.anomalies)'));
    expect(logged.map((l) => l.fields?.anomaly_observed)).toEqual([60]);
  });

  it('evicts the least recently seen tenth at max_keys; an evicted key starts a new baseline', () => {
    const { transform, ctx, store } = make(options({ max_keys: 10, status_field: null }));
    for (let i = 0; i < 10; i++) transform.process(minute(`10.0.0.${i}`, i, 1));
    transform.process(minute('10.0.0.0', 10, 1));
    transform.process(minute('10.0.0.99', 11, 1));
    const keys = store.maps.get('keys') as Map<string, unknown>;
    expect(keys.size).toBe(10);
    expect(keys.has(JSON.stringify(['10.0.0.1', '/login']))).toBe(false);
    expect(keys.has(JSON.stringify(['10.0.0.0', '/login']))).toBe(true);
    expect(ctx.values.get('etl_anomalies_evicted_keys_total')).toBe(1);
  });

  it('finds the same anomalies after a restart from its checkpointed state', () => {
    const traffic = (m: number) => [...minute('10.0.0.1', m, m === 25 ? 120 : 20), ...minute('10.0.0.2', m, 5)];
    const run = (restartAt: number | undefined) => {
      let r = make(options());
      const found: EtlRecord[] = [];
      for (let m = 0; m < 30; m++) {
        if (m === restartAt) {
          r.store.snapshot = r.transform.snapshot();
          const store = r.store.clone();
          r = make(options(), store);
        }
        found.push(...anomaliesOf(r.transform.process(traffic(m))));
        r.clock.watermark = T0 + (m + 1) * MINUTE;
        found.push(...anomaliesOf(r.transform.tick()));
      }
      return found;
    };
    const straight = run(undefined);
    expect(straight.map((a) => a.anomaly_observed)).toEqual([120]);
    expect(run(26)).toEqual(straight);
    expect(run(12)).toEqual(straight);
  });

  it('finds the same anomalies however records are cut into batches (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.integer({ min: 0, max: 40 }), fc.nat({ max: 59_999 })), {
          maxLength: 200,
        }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (events, cuts) => {
          // Mostly steady, with bursts: key `a` gets 30 extra records in minute 35.
          const records = [
            ...events.map(([ip, m, at]) => hit(ip, T0 + m * MINUTE + at)),
            ...Array.from({ length: 30 }, (_, i) => hit('a', T0 + 35 * MINUTE + i)),
          ].sort((x, y) => String(x.timestamp).localeCompare(String(y.timestamp)));
          const o = options({ warmup_buckets: 3, min_count: 5, threshold: 3 });
          const whole = make(o).transform;
          const expected = [...anomaliesOf(whole.process(records)), ...anomaliesOf(whole.flush())];
          const pieces = make(o).transform;
          const got: EtlRecord[] = [];
          let from = 0;
          for (const at of [...cuts.map((c) => c % (records.length + 1))].sort((x, y) => x - y)) {
            got.push(...anomaliesOf(pieces.process(records.slice(from, at))));
            from = at;
          }
          got.push(...anomaliesOf(pieces.process(records.slice(from))), ...anomaliesOf(pieces.flush()));
          expect(got).toEqual(expected);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('reads status classes from numbers and numeric text', () => {
    expect([200, '404', 599, 99, 600, null, 'x', 201.5].map(statusClass)).toEqual([
      '2xx',
      '4xx',
      '5xx',
      null,
      null,
      null,
      null,
      null,
    ]);
  });
});

describe('anomalies: definition', () => {
  const yaml = (operator: string) => `apiVersion: etl/v1
kind: Pipeline
metadata: { name: a }
spec:
  sources:
    logs: { type: file, paths: [logs/*.log] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
    rates:
${operator}
  sinks:
    alerts: { type: file, inputs: [rates.anomalies], path: alerts.jsonl }
`;

  it('refuses misspelt key, status and time fields at their line and column', async () => {
    const result = await loadPipelinesFromString(
      yaml(`      type: anomalies
      inputs: [parsed]
      key_fields: [clientip, path]
      status_field: statuss
      time_field: time`),
      'pipeline.yaml',
      { env: {} },
    );
    const errors = result.diagnostics.filter((d) => d.severity === 'error');
    expect(errors.map((d) => [d.code, d.line, d.column, d.message])).toEqual([
      ['ETL_GRAPH_UNKNOWN_FIELD', 12, 20, 'unknown field `clientip` — did you mean `client_ip`?'],
      ['ETL_GRAPH_UNKNOWN_FIELD', 13, 21, 'unknown field `statuss` — did you mean `status`?'],
      ['ETL_GRAPH_UNKNOWN_FIELD', 14, 19, 'unknown field `time`'],
    ]);
  });

  it('declares the anomaly records with the key typed as the input has it', () => {
    const declared = definition.outputSchemas?.(options(), accessRecordSchema).anomalies;
    expect(Object.keys(declared?.properties ?? {})).toEqual([
      'client_ip',
      'path',
      'status_class',
      'anomaly_bucket_start',
      'anomaly_bucket_seconds',
      'anomaly_observed',
      'anomaly_baseline',
      'anomaly_deviation',
      'anomaly_score',
      'anomaly_direction',
      'anomaly_baseline_buckets',
    ]);
    expect(declared?.properties?.client_ip?.type).toEqual(['string', 'null']);
    const validate = createRecordAjv().compile(declared ?? {});
    const { transform, clock } = make(options({ warmup_buckets: 2, min_count: 5 }));
    for (let m = 0; m < 5; m++) transform.process(minute('10.0.0.1', m, 2));
    transform.process(minute('10.0.0.1', 5, 60));
    clock.watermark = T0 + 6 * MINUTE;
    const found = anomaliesOf(transform.tick());
    expect(found).toHaveLength(1);
    for (const a of found) expect(validate(a), JSON.stringify(validate.errors)).toBe(true);
  });

  it('refuses a key field the anomaly records use themselves', async () => {
    const result = await loadPipelinesFromString(
      yaml('      { type: anomalies, inputs: [parsed], key_fields: [client_ip, client_ip] }'),
      'pipeline.yaml',
      { env: {} },
    );
    expect(result.diagnostics.filter((d) => d.severity === 'error').map((d) => d.message)).toEqual([
      '`client_ip` is listed twice',
    ]);
  });
});
