import { afterEach, describe, expect, it, vi } from 'vitest';
import packageJson from '../../package.json' with { type: 'json' };
import type { Logger } from '../../engine/operator.ts';
import { createTelemetry, tracesEnabled, tracesUrl } from '../../engine/telemetry/telemetry.ts';
import { samplerFor } from '../../engine/telemetry/tracing.ts';
import type { BatchSpan } from '../../engine/telemetry/types.ts';
import { type FakeCollector, startCollector } from './collector.ts';

const exporters = vi.hoisted(() => ({ created: 0 }));

// Counts exporter constructions, to prove that tracing off builds none; the real exporter does the work.
vi.mock('@opentelemetry/exporter-trace-otlp-http', async (importOriginal) => {
  const actual = await importOriginal<typeof import('@opentelemetry/exporter-trace-otlp-http')>();
  class CountingExporter extends actual.OTLPTraceExporter {
    constructor(...args: ConstructorParameters<typeof actual.OTLPTraceExporter>) {
      super(...args);
      exporters.created++;
    }
  }
  return { ...actual, OTLPTraceExporter: CountingExporter };
});

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
}
interface OtlpAttribute {
  key: string;
  value: OtlpValue;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: OtlpAttribute[];
  status?: { code?: number; message?: string };
  events?: { name: string; attributes: OtlpAttribute[] }[];
}
interface OtlpRequest {
  resourceSpans: { resource: { attributes: OtlpAttribute[] }; scopeSpans: { spans: OtlpSpan[] }[] }[];
}

const collectors: FakeCollector[] = [];
afterEach(async () => {
  await Promise.all(collectors.splice(0).map((c) => c.close()));
});

async function collector(options?: { respond?: boolean }): Promise<FakeCollector> {
  const c = await startCollector(options);
  collectors.push(c);
  return c;
}

function decode(c: FakeCollector): OtlpRequest[] {
  return c.exports.map((e) => {
    expect(e.contentType).toBe('application/json');
    return JSON.parse(e.body.toString('utf8')) as OtlpRequest;
  });
}

function spansOf(requests: OtlpRequest[]): OtlpSpan[] {
  return requests.flatMap((r) => r.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)));
}

function attributes(list: OtlpAttribute[]): Record<string, string | number | undefined> {
  return Object.fromEntries(
    list.map((a) => [
      a.key,
      a.value.stringValue ?? (a.value.intValue === undefined ? undefined : Number(a.value.intValue)),
    ]),
  );
}

function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = (level: string) => (message: string) => lines.push(`${level} ${message}`);
  return { lines, debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

describe('OTLP traces', () => {
  it('exports one trace per batch, chained source → transform → sink', async () => {
    const c = await collector();
    const before = exporters.created;
    const telemetry = await createTelemetry({ traces: 'otlp', otlpEndpoint: c.url }, { env: {} });
    expect(telemetry.tracing).toBe(true);
    expect(exporters.created).toBe(before + 1);

    const source = telemetry.stage('web', 'read', 'source', 'file').startBatch(undefined, 10, 1234) as BatchSpan;
    const transform = telemetry.stage('web', 'parse', 'transform', 'parse_access').startBatch(source.context, 10);
    const sink = telemetry.stage('web', 'store', 'sink', 'postgres').startBatch(transform?.context, 9);
    sink?.end(9);
    transform?.end(9);
    source.end(10);
    await telemetry.shutdown();

    const requests = decode(c);
    const spans = spansOf(requests);
    expect(spans).toHaveLength(3);
    const byName = Object.fromEntries(spans.map((s) => [s.name, s]));
    const [read, parse, store] = [byName.read, byName.parse, byName.store];
    if (!read || !parse || !store) throw new Error(`unexpected spans: ${spans.map((s) => s.name).join(', ')}`);

    expect(new Set(spans.map((s) => s.traceId)).size).toBe(1);
    expect(read.parentSpanId ?? '').toBe('');
    expect(parse.parentSpanId).toBe(read.spanId);
    expect(store.parentSpanId).toBe(parse.spanId);
    expect(spans.every((s) => s.kind === 1)).toBe(true); // SPAN_KIND_INTERNAL

    expect(attributes(read.attributes)).toEqual({
      'etl.pipeline': 'web',
      'etl.stage': 'read',
      'etl.stage.kind': 'source',
      'etl.stage.type': 'file',
      'etl.records.in': 10,
      'etl.bytes': 1234,
      'etl.records.out': 10,
    });
    expect(attributes(parse.attributes)).toMatchObject({
      'etl.stage': 'parse',
      'etl.stage.kind': 'transform',
      'etl.stage.type': 'parse_access',
      'etl.records.in': 10,
      'etl.records.out': 9,
    });
    expect(attributes(store.attributes)).toMatchObject({ 'etl.stage.kind': 'sink', 'etl.records.out': 9 });

    const resource = attributes(requests[0]?.resourceSpans[0]?.resource.attributes ?? []);
    expect(resource['service.name']).toBe('etl');
    expect(resource['service.version']).toBe(packageJson.version);
  });

  it('marks a failed batch: status ERROR and an exception event', async () => {
    const c = await collector();
    const telemetry = await createTelemetry({ traces: 'otlp', otlpEndpoint: `${c.url}/v1/traces` }, { env: {} });
    const span = telemetry.stage('web', 'store', 'sink', 'postgres').startBatch(undefined, 5);
    span?.end(0, new Error('connection reset'));
    await telemetry.shutdown();

    const [failed] = spansOf(decode(c));
    expect(failed?.status).toMatchObject({ code: 2, message: 'connection reset' });
    const event = failed?.events?.find((e) => e.name === 'exception');
    expect(attributes(event?.attributes ?? [])['exception.message']).toBe('connection reset');
  });

  it('is switched on by the standard environment, with OTEL_SERVICE_NAME', async () => {
    const c = await collector();
    const telemetry = await createTelemetry(
      { traces: 'none' },
      { env: { OTEL_EXPORTER_OTLP_ENDPOINT: c.url, OTEL_SERVICE_NAME: 'edge-logs' } },
    );
    expect(telemetry.tracing).toBe(true);
    telemetry.stage('web', 'read', 'source', 'file').startBatch(undefined, 1)?.end(1);
    await telemetry.shutdown();
    const requests = decode(c);
    expect(spansOf(requests)).toHaveLength(1);
    expect(attributes(requests[0]?.resourceSpans[0]?.resource.attributes ?? [])['service.name']).toBe('edge-logs');
  });

  it('gives up flushing at the deadline when the collector hangs, and says so', async () => {
    const c = await collector({ respond: false });
    const logger = recordingLogger();
    const telemetry = await createTelemetry(
      { traces: 'otlp', otlpEndpoint: c.url },
      { env: {}, logger, shutdownTimeoutMs: 200 },
    );
    telemetry.stage('web', 'read', 'source', 'file').startBatch(undefined, 1)?.end(1);
    const started = performance.now();
    await telemetry.shutdown();
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(c.exports).toHaveLength(1);
    // The export times out with the deadline: whichever comes first, the user is told spans were lost.
    expect(logger.lines.some((l) => /^warn trace export (failed|did not finish in time)/.test(l))).toBe(true);
    await telemetry.shutdown(); // idempotent
  });
});

describe('tracing off', () => {
  it('creates no exporter and startBatch returns undefined at next to no cost', async () => {
    const before = exporters.created;
    const telemetry = await createTelemetry({ traces: 'none' }, { env: {} });
    expect(telemetry.tracing).toBe(false);
    const stage = telemetry.stage('web', 'parse', 'transform', 'parse_access');
    expect(stage.startBatch(undefined, 10)).toBeUndefined();

    const started = performance.now();
    let spans = 0;
    for (let i = 0; i < 1_000_000; i++) if (stage.startBatch(undefined, i) !== undefined) spans++;
    const elapsedMs = performance.now() - started;
    expect(spans).toBe(0);
    // A no-op call costs nanoseconds; a real span costs microseconds (a million would take seconds).
    expect(elapsedMs).toBeLessThan(250);

    await telemetry.shutdown();
    expect(exporters.created).toBe(before);
  });

  it('OTEL_SDK_DISABLED=true wins over the pipeline setting', async () => {
    const before = exporters.created;
    const telemetry = await createTelemetry({ traces: 'otlp' }, { env: { OTEL_SDK_DISABLED: 'true' } });
    expect(telemetry.tracing).toBe(false);
    await telemetry.shutdown();
    expect(exporters.created).toBe(before);
  });
});

describe('trace settings from the environment', () => {
  it('decides like the OpenTelemetry SDK', () => {
    expect(tracesEnabled({ traces: 'none' }, {})).toBe(false);
    expect(tracesEnabled({ traces: 'otlp' }, {})).toBe(true);
    expect(tracesEnabled({ traces: 'none' }, { OTEL_TRACES_EXPORTER: 'otlp' })).toBe(true);
    expect(tracesEnabled({ traces: 'none' }, { OTEL_TRACES_EXPORTER: 'console, otlp' })).toBe(true);
    expect(tracesEnabled({ traces: 'none' }, { OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'x' })).toBe(
      false,
    );
    expect(tracesEnabled({ traces: 'none' }, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' })).toBe(
      true,
    );
    expect(tracesEnabled({ traces: 'otlp' }, { OTEL_SDK_DISABLED: 'TRUE' })).toBe(false);
  });

  it('resolves the traces URL: setting, then signal endpoint as is, then base endpoint', () => {
    expect(tracesUrl({ traces: 'otlp', otlpEndpoint: 'http://c:4318/' }, {})).toBe('http://c:4318/v1/traces');
    expect(tracesUrl({ traces: 'otlp', otlpEndpoint: 'http://c:4318/v1/traces' }, {})).toBe('http://c:4318/v1/traces');
    expect(
      tracesUrl(
        { traces: 'otlp', otlpEndpoint: 'http://a:1' },
        { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:2/custom' },
      ),
    ).toBe('http://a:1/v1/traces');
    expect(
      tracesUrl(
        { traces: 'otlp' },
        { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:2/custom', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:3' },
      ),
    ).toBe('http://b:2/custom');
    expect(tracesUrl({ traces: 'otlp' }, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:3/otlp' })).toBe(
      'http://c:3/otlp/v1/traces',
    );
    expect(tracesUrl({ traces: 'otlp' }, {})).toBeUndefined();
  });
});

describe('sampling', () => {
  it('takes the ratio, else OTEL_TRACES_SAMPLER and its argument, else every trace; always parent-based by default', () => {
    const logger = recordingLogger();
    const name = (ratio: number | undefined, env: NodeJS.ProcessEnv) => String(samplerFor(ratio, env, logger));
    expect(name(0.25, { OTEL_TRACES_SAMPLER: 'always_off' })).toMatch(/^ParentBased\{root=TraceIdRatioBased\{0\.25\}/);
    expect(name(undefined, {})).toMatch(/^ParentBased\{root=AlwaysOnSampler/);
    expect(name(undefined, { OTEL_TRACES_SAMPLER: 'always_off' })).toBe('AlwaysOffSampler');
    expect(name(undefined, { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.5' })).toBe(
      'TraceIdRatioBased{0.5}',
    );
    expect(
      name(undefined, { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1' }),
    ).toMatch(/^ParentBased\{root=TraceIdRatioBased\{0\.1\}/);
    expect(logger.lines).toEqual([]);
    expect(name(undefined, { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' })).toMatch(
      /^ParentBased\{root=TraceIdRatioBased\{1\}/,
    );
    expect(name(undefined, { OTEL_TRACES_SAMPLER: 'jaeger_remote' })).toMatch(/^ParentBased\{root=AlwaysOnSampler/);
    expect(logger.lines).toHaveLength(2);
    expect(logger.lines.every((l) => l.startsWith('warn OTEL_TRACES_SAMPLER'))).toBe(true);
  });

  it('an unsampled batch shares one span object through every stage: nothing is allocated past its source', async () => {
    const c = await collector();
    const telemetry = await createTelemetry({ traces: 'otlp', otlpEndpoint: c.url, sampleRatio: 0 }, { env: {} });
    const source = telemetry.stage('web', 'read', 'source', 'file');
    const parse = telemetry.stage('web', 'parse', 'transform', 'parse');
    const root = source.startBatch(undefined, 10) as BatchSpan;
    expect(root.sampled).toBe(false);
    const child = parse.startBatch(root.context, 10);
    expect(child).toBe(root);
    const started = performance.now();
    for (let i = 0; i < 100_000; i++) parse.startBatch(root.context, i)?.end(i, undefined, 1);
    // A hundred thousand later-stage spans of unsampled batches: no SDK call at all.
    expect(performance.now() - started).toBeLessThan(250);
    await telemetry.shutdown();
    expect(c.exports).toHaveLength(0);
  });
});

describe('commit spans and remote parents', () => {
  it('records a commit span only when it links sampled batches, from the cut to now', async () => {
    const c = await collector();
    const telemetry = await createTelemetry({ traces: 'otlp', otlpEndpoint: c.url }, { env: {} });
    const sink = telemetry.stage('web', 'store', 'sink', 'postgres');
    sink.commit?.(1, Date.now(), []);
    const batches = [sink.startBatch(undefined, 3), sink.startBatch(undefined, 4)] as BatchSpan[];
    for (const b of batches) b.end(3);
    const cutAt = Date.now() - 1000;
    sink.commit?.(
      2,
      cutAt,
      batches.map((b) => b.context),
    );
    await telemetry.shutdown();

    const spans = spansOf(decode(c));
    const commits = spans.filter((s) => s.name === 'commit store');
    expect(commits).toHaveLength(1);
    const commit = commits[0] as OtlpSpan & { links?: { spanId: string }[]; startTimeUnixNano: string };
    expect(attributes(commit.attributes)).toMatchObject({
      'etl.checkpoint.id': 2,
      'etl.batches': 2,
      'etl.stage': 'store',
    });
    expect(commit.links?.map((l) => l.spanId).sort()).toEqual(
      spans
        .filter((s) => s.name === 'store')
        .map((s) => s.spanId)
        .sort(),
    );
    expect(Math.abs(Number(BigInt(commit.startTimeUnixNano) / 1_000_000n) - cutAt)).toBeLessThan(5);
  });

  it('reads a W3C traceparent, and ignores a malformed one', async () => {
    const telemetry = await createTelemetry({ traces: 'otlp', otlpEndpoint: 'http://127.0.0.1:9' }, { env: {} });
    const stage = telemetry.stage('web', 'push', 'source', 'http');
    expect(
      stage.remoteParent?.({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }),
    ).toBeDefined();
    expect(
      stage.remoteParent?.({ traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01' }),
    ).toBeUndefined();
    expect(stage.remoteParent?.({ traceparent: 'garbage' })).toBeUndefined();
    await telemetry.shutdown();
  });
});
