import { afterEach, describe, expect, it } from 'vitest';
import { createTelemetry, type EtlTelemetry } from '../../engine/telemetry/telemetry.ts';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL_PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses the Prometheus text format, so assertions do not depend on label order. */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const match = SAMPLE_LINE.exec(line);
    if (!match || line.startsWith('#')) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(LABEL_PAIR)) labels[key as string] = value as string;
    samples.push({ name: match[1] as string, labels, value: Number(match[3]) });
  }
  return samples;
}

function value(text: string, name: string, labels: Record<string, string>): number | undefined {
  const found = parse(text).filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (found.length > 1) throw new Error(`${found.length} series match ${name} ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

const READ = { pipeline: 'web', component_id: 'read', component_kind: 'source', component_type: 'file' };
const PARSE = { pipeline: 'web', component_id: 'parse', component_kind: 'transform', component_type: 'parse_access' };

const opened: EtlTelemetry[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((t) => t.shutdown()));
});

async function telemetry(prometheusPort?: number): Promise<EtlTelemetry> {
  const t = await createTelemetry({ traces: 'none', prometheusPort }, { env: {} });
  opened.push(t);
  return t;
}

describe('stage metrics', () => {
  it('counts received, sent, errors and discarded with the stage labels', async () => {
    const t = await telemetry();
    const read = t.stage('web', 'read', 'source', 'file');
    const parse = t.stage('web', 'parse', 'transform', 'parse_access');
    read.received(100, 8_000);
    read.received(50, 4_000);
    read.sent(150, 'default');
    parse.received(150);
    parse.sent(140, 'default');
    parse.sent(10, 'dead_letter');
    parse.sent(5, 'dead_letter');
    parse.error('process');
    parse.error('process', 2);
    parse.error('flush');
    parse.discarded(3, 'port_unread');

    const text = await t.metricsText();
    expect(value(text, 'etl_component_received_records_total', READ)).toBe(150);
    expect(value(text, 'etl_component_received_bytes_total', READ)).toBe(12_000);
    expect(value(text, 'etl_component_received_records_total', PARSE)).toBe(150);
    expect(value(text, 'etl_component_received_bytes_total', PARSE)).toBe(0);
    expect(value(text, 'etl_component_sent_records_total', { ...READ, port: 'default' })).toBe(150);
    expect(value(text, 'etl_component_sent_records_total', { ...PARSE, port: 'default' })).toBe(140);
    expect(value(text, 'etl_component_sent_records_total', { ...PARSE, port: 'dead_letter' })).toBe(15);
    expect(value(text, 'etl_component_errors_total', { ...PARSE, phase: 'process' })).toBe(3);
    expect(value(text, 'etl_component_errors_total', { ...PARSE, phase: 'flush' })).toBe(1);
    expect(value(text, 'etl_component_errors_total', { ...READ, phase: 'process' })).toBeUndefined();
    expect(value(text, 'etl_component_discarded_records_total', { ...PARSE, reason: 'port_unread' })).toBe(3);
    expect(text).toContain('# TYPE etl_component_sent_records_total counter');
  });

  it('keeps counting into the same series when a stage is asked for again, and never goes down', async () => {
    const t = await telemetry();
    t.stage('web', 'read', 'source', 'file').received(1);
    const again = t.stage('web', 'read', 'source', 'file');
    again.received(2);
    again.received(-5);
    again.received(Number.NaN, Number.NaN);
    again.sent(-1, 'default');
    again.error('open', 0);
    const text = await t.metricsText();
    expect(value(text, 'etl_component_received_records_total', READ)).toBe(3);
    expect(value(text, 'etl_component_received_bytes_total', READ)).toBe(0);
    expect(value(text, 'etl_component_sent_records_total', READ)).toBeUndefined();
    expect(value(text, 'etl_component_errors_total', READ)).toBeUndefined();
  });

  it('has process metrics, and a registry of its own per telemetry', async () => {
    const a = await telemetry();
    const b = await telemetry();
    a.stage('web', 'read', 'source', 'file').received(7);
    const textA = await a.metricsText();
    const textB = await b.metricsText();
    expect(textA).toContain('process_cpu_user_seconds_total');
    expect(textA).toContain('nodejs_heap_size_used_bytes');
    expect(value(textA, 'etl_component_received_records_total', READ)).toBe(7);
    expect(value(textB, 'etl_component_received_records_total', READ)).toBeUndefined();
  });
});

describe('stage, source, sink and pipeline series', () => {
  const SINK = { pipeline: 'web', component_id: 'db', component_kind: 'sink', component_type: 'postgres' };

  it('exposes histograms with cumulative buckets, their sum and count', async () => {
    const t = await telemetry();
    const parse = t.stage('web', 'parse', 'transform', 'parse_access');
    parse.batch(0.003);
    parse.batch(0.2);
    parse.batch();
    parse.deadLettered(4);
    const text = await t.metricsText();
    expect(text).toContain('# TYPE etl_component_batch_duration_seconds histogram');
    expect(value(text, 'etl_component_batches_total', PARSE)).toBe(3);
    expect(value(text, 'etl_component_dead_lettered_records_total', PARSE)).toBe(4);
    const bucket = (le: string) => value(text, 'etl_component_batch_duration_seconds_bucket', { ...PARSE, le });
    expect(bucket('0.0025')).toBe(0);
    expect(bucket('0.005')).toBe(1);
    expect(bucket('0.25')).toBe(2);
    expect(bucket('+Inf')).toBe(2);
    expect(value(text, 'etl_component_batch_duration_seconds_count', PARSE)).toBe(2);
    expect(value(text, 'etl_component_batch_duration_seconds_sum', PARSE)).toBeCloseTo(0.203);
  });

  it('keeps source series for sources and sink series for sinks', async () => {
    const t = await telemetry();
    const read = t.stage('web', 'read', 'source', 'file');
    const db = t.stage('web', 'db', 'sink', 'postgres');
    read.read(500, 5);
    read.creditWait(0.5);
    read.sourceState(() => ({ lagBytes: 1234, openFiles: 3 }));
    db.read(100, 1);
    db.writeTime(0.02);
    db.commitTime(0.1);
    db.retry();
    db.reconnected();
    db.circuit('open');
    db.committed(10, 7200, 1.5);
    db.committed(Number.NaN, 1, 1);
    const text = await t.metricsText();
    expect(value(text, 'etl_source_read_bytes_total', READ)).toBe(500);
    expect(value(text, 'etl_source_read_lines_total', READ)).toBe(5);
    expect(value(text, 'etl_source_read_bytes_total', SINK)).toBeUndefined();
    expect(value(text, 'etl_source_credit_wait_seconds_count', READ)).toBe(1);
    expect(value(text, 'etl_source_lag_bytes', READ)).toBe(1234);
    expect(value(text, 'etl_source_open_files', READ)).toBe(3);
    expect(value(text, 'etl_sink_write_duration_seconds_count', SINK)).toBe(1);
    expect(value(text, 'etl_sink_write_duration_seconds_count', READ)).toBeUndefined();
    expect(value(text, 'etl_sink_commit_duration_seconds_sum', SINK)).toBe(0.1);
    expect(value(text, 'etl_sink_retries_total', SINK)).toBe(1);
    expect(value(text, 'etl_sink_reconnects_total', SINK)).toBe(1);
    expect(value(text, 'etl_sink_circuit_state', SINK)).toBe(2);
    expect(value(text, 'etl_sink_committed_records_total', SINK)).toBe(10);
    // Two hours old: past the last bound (an hour) of the event freshness.
    expect(value(text, 'etl_freshness_event_seconds_bucket', { ...SINK, le: '3600' })).toBe(0);
    expect(value(text, 'etl_freshness_event_seconds_count', SINK)).toBe(10);
    expect(value(text, 'etl_freshness_read_seconds_bucket', { ...SINK, le: '2' })).toBe(10);
    expect(value(text, 'etl_freshness_read_seconds_bucket', { ...SINK, le: '1' })).toBe(0);
  });

  it('tells the backlog of each edge, whether the pipeline is up, and the age of its last checkpoint', async () => {
    const t = await telemetry();
    const web = t.pipeline('web');
    web.up(true);
    const edge = web.edge('parse.dead_letter', 'rejects');
    edge.sent += 3;
    edge.done += 1;
    const before = Date.now();
    web.checkpointCommitted(before - 4000, 0.25);
    let text = await t.metricsText();
    expect(
      value(text, 'etl_edge_inflight_batches', { pipeline: 'web', from: 'parse.dead_letter', to: 'rejects' }),
    ).toBe(2);
    expect(value(text, 'etl_pipeline_up', { pipeline: 'web' })).toBe(1);
    expect(value(text, 'etl_checkpoint_last_success_timestamp_seconds', { pipeline: 'web' })).toBe(
      (before - 4000) / 1000,
    );
    const age = value(text, 'etl_checkpoint_age_seconds', { pipeline: 'web' }) ?? 0;
    expect(age).toBeGreaterThanOrEqual(4);
    expect(age).toBeLessThan(4 + (Date.now() - before) / 1000 + 0.01);
    expect(value(text, 'etl_checkpoint_duration_seconds_count', { pipeline: 'web' })).toBe(1);

    // A checkpoint due with nothing new to commit: the committed state is current, its time stays.
    web.checkpointCurrent(Date.now());
    text = await t.metricsText();
    expect(value(text, 'etl_checkpoint_age_seconds', { pipeline: 'web' })).toBeLessThan(1);
    expect(value(text, 'etl_checkpoint_last_success_timestamp_seconds', { pipeline: 'web' })).toBe(
      (before - 4000) / 1000,
    );

    // An older checkpoint (the one a run resumed from, told late) does not move the time back.
    web.checkpointCommitted(before - 60_000);
    web.up(false);
    text = await t.metricsText();
    expect(value(text, 'etl_checkpoint_last_success_timestamp_seconds', { pipeline: 'web' })).toBe(
      (before - 4000) / 1000,
    );
    expect(value(text, 'etl_pipeline_up', { pipeline: 'web' })).toBe(0);
    expect(value(text, 'etl_checkpoint_age_seconds', { pipeline: 'web' })).toBeUndefined();
    // A run that ended leaves no backlog behind.
    expect(
      value(text, 'etl_edge_inflight_batches', { pipeline: 'web', from: 'parse.dead_letter', to: 'rejects' }),
    ).toBe(0);
  });
});

describe('operator metrics', () => {
  it('adds pipeline and component_id, and lets stages of a type share a metric', async () => {
    const t = await telemetry();
    const one = t.operatorMetrics('web', 'geo_a');
    const two = t.operatorMetrics('web', 'geo_b');
    one.counter('geoip_lookups_total', 'GeoIP lookups.', { result: 'hit' }).inc(3);
    one.counter('geoip_lookups_total', 'GeoIP lookups.', { result: 'miss' }).inc();
    two.counter('geoip_lookups_total', 'GeoIP lookups.', { result: 'hit' }).inc(5);
    one.gauge('geoip_cache_entries', 'Entries in the lookup cache.').set(42);
    const text = await t.metricsText();
    const hits = { pipeline: 'web', result: 'hit' };
    expect(value(text, 'geoip_lookups_total', { ...hits, component_id: 'geo_a' })).toBe(3);
    expect(value(text, 'geoip_lookups_total', { ...hits, component_id: 'geo_b' })).toBe(5);
    expect(value(text, 'geoip_lookups_total', { component_id: 'geo_a', result: 'miss' })).toBe(1);
    expect(value(text, 'geoip_cache_entries', { pipeline: 'web', component_id: 'geo_a' })).toBe(42);
  });

  it('carries the kind and type of a stage the runtime registered', async () => {
    const t = await telemetry();
    t.stage('web', 'checked', 'transform', 'validate');
    t.operatorMetrics('web', 'checked').counter('checks_total', 'Checks.').inc(2);
    const text = await t.metricsText();
    expect(
      value(text, 'checks_total', {
        pipeline: 'web',
        component_id: 'checked',
        component_kind: 'transform',
        component_type: 'validate',
      }),
    ).toBe(2);
  });

  it('refuses bad or clashing names and labels', async () => {
    const t = await telemetry();
    const m = t.operatorMetrics('web', 'geo');
    m.counter('geoip_lookups_total', 'GeoIP lookups.', { result: 'hit' });
    expect(() => m.counter('GeoIP-Lookups', 'x')).toThrow(/snake_case/);
    expect(() => m.counter('etl_component_sent_records_total', 'x')).toThrow(/reserved/);
    expect(() => m.gauge('process_open_fds', 'x')).toThrow(/reserved/);
    expect(() => m.counter('geoip_misses_total', ' ')).toThrow(/help/);
    expect(() => m.counter('geoip_misses_total', 'x', { pipeline: 'other' })).toThrow(/set by the runtime/);
    expect(() => m.counter('geoip_misses_total', 'x', { 'bad-label': 'v' })).toThrow(/label name/);
    expect(() => m.gauge('geoip_lookups_total', 'x', { result: 'hit' })).toThrow(/already exists as a counter/);
    expect(() => m.counter('geoip_lookups_total', 'x', { outcome: 'hit' })).toThrow(/already exists/);
  });
});

describe('/metrics over HTTP', () => {
  it('serves the exposition on 127.0.0.1 until shutdown', async () => {
    const t = await telemetry(0);
    expect(t.metricsAddress?.host).toBe('127.0.0.1');
    const port = t.metricsAddress?.port;
    expect(port).toBeGreaterThan(0);
    t.stage('web', 'read', 'source', 'file').received(12);

    const response = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(value(await response.text(), 'etl_component_received_records_total', READ)).toBe(12);

    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status).toBe(405);

    await t.shutdown();
    await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();
    await t.shutdown();
  });

  it('binds the host named by ETL_METRICS_HOST', async () => {
    const t = await createTelemetry({ traces: 'none', prometheusPort: 0 }, { env: { ETL_METRICS_HOST: 'localhost' } });
    opened.push(t);
    expect(t.metricsAddress?.host).toBe('localhost');
    const response = await fetch(`http://localhost:${t.metricsAddress?.port}/metrics`);
    expect(response.status).toBe(200);
  });

  it('fails fast when the port is taken', async () => {
    const first = await telemetry(0);
    await expect(
      createTelemetry({ traces: 'none', prometheusPort: first.metricsAddress?.port }, { env: {} }),
    ).rejects.toThrow(/cannot serve metrics on 127\.0\.0\.1:\d+/);
  });
});
