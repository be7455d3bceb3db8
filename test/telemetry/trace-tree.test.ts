/**
 * The traces a real run exports, received by a local OTLP/HTTP collector: the span tree of a fan-out pipeline
 * loaded from YAML, the commit spans' links, a W3C parent continued, fan-in links, and sampling.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import packageJson from '../../package.json' with { type: 'json' };
import { loadPipelines } from '../../engine/config/load.ts';
import { defineSink, defineSource, defineTransform } from '../../engine/operator.ts';
import type { EtlRecord } from '../../engine/record.ts';
import { runPipeline } from '../../engine/runtime/run.ts';
import { createTelemetry } from '../../engine/telemetry/telemetry.ts';
import { collected, collectSink } from '../support/operators.ts';
import { pipeline, stage } from '../support/spec.ts';
import { attributeValues, type FakeCollector, type ReceivedSpan, receivedSpans, startCollector } from './collector.ts';

const LINES = [
  '192.0.2.1 - - [26/Nov/2026:00:00:01 +0000] "GET / HTTP/1.1" 200 512 "-" "curl/8.5.0"',
  '192.0.2.2 - - [26/Nov/2026:00:00:02 +0000] "GET /a HTTP/1.1" 404 128 "-" "curl/8.5.0"',
  'this line is no access log',
  '192.0.2.4 - - [26/Nov/2026:00:00:04 +0000] "POST /api HTTP/1.1" 201 64 "-" "curl/8.5.0"',
  '192.0.2.5 - - [26/Nov/2026:00:00:05 +0000] "GET /b HTTP/1.1" 200 256 "-" "curl/8.5.0"',
];

let collector: FakeCollector | undefined;
afterEach(async () => {
  await collector?.close();
  collector = undefined;
  collected.clear();
});

const key = (s: { traceId: string; spanId: string }) => `${s.traceId}/${s.spanId}`;

describe('a fan-out pipeline file → parse → two file sinks (and a dead-letter sink)', () => {
  it('exports one tree per batch, and commit spans linked to every batch they made durable', async () => {
    collector = await startCollector();
    const dir = mkdtempSync(join(tmpdir(), 'etl-trace-tree-'));
    writeFileSync(join(dir, 'access.log'), `${LINES.join('\n')}\n`);
    const file = join(dir, 'fanout.yaml');
    writeFileSync(
      file,
      `apiVersion: etl/v1
kind: Pipeline
metadata: { name: fanout }
spec:
  settings: { data_dir: ${join(dir, '.etl')}, batch_max_records: 2 }
  telemetry: { traces: { exporter: otlp, endpoint: "${collector.url}" } }
  sources:
    logs: { type: file, paths: ["${join(dir, 'access.log')}"] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
  sinks:
    copy: { type: file, inputs: [parsed], path: ${join(dir, 'copy.jsonl')} }
    archive: { type: file, inputs: [parsed], path: ${join(dir, 'archive.jsonl')} }
    rejects: { type: file, inputs: [parsed.dead_letter], path: ${join(dir, 'rejects.jsonl')} }
`,
    );
    const { pipelines, diagnostics } = await loadPipelines([file]);
    expect(diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const spec = pipelines[0];
    if (!spec) throw new Error('no pipeline loaded');
    const telemetry = await createTelemetry(spec.telemetry, { env: {}, pipelines: [spec.name] });
    const result = await runPipeline(spec, { telemetry });
    await telemetry.shutdown();
    expect(result.ok).toBe(true);

    const spans = receivedSpans(collector);
    const commits = spans.filter((s) => s.name.startsWith('commit '));
    const batches = Map.groupBy(
      spans.filter((s) => !commits.includes(s)),
      (s) => s.traceId,
    );
    // Five lines in batches of two: three batches, three traces.
    expect(batches.size).toBe(3);
    let deadLettered = 0;
    let recordsIn = 0;
    for (const trace of batches.values()) {
      const byName = new Map(trace.map((s) => [s.name, s]));
      expect(trace).toHaveLength(byName.size); // one span per stage per batch
      const logs = byName.get('logs') as ReceivedSpan;
      const parsed = byName.get('parsed') as ReceivedSpan;
      expect(logs.parentSpanId ?? '').toBe('');
      expect(parsed.parentSpanId).toBe(logs.spanId);
      // Fan-out: both sinks are children of the batch's parse span, and so is the dead-letter sink.
      for (const name of ['copy', 'archive', 'rejects']) {
        const sink = byName.get(name);
        if (sink) expect(sink.parentSpanId, name).toBe(parsed.spanId);
      }
      const parsedAttributes = attributeValues(parsed.attributes);
      expect(parsedAttributes).toMatchObject({ 'etl.pipeline': 'fanout', 'etl.stage.type': 'parse' });
      if (byName.has('rejects')) {
        expect(parsedAttributes['etl.records.dead_lettered']).toBe(1);
        deadLettered++;
      } else {
        expect(parsedAttributes['etl.records.dead_lettered']).toBeUndefined();
      }
      recordsIn += Number(attributeValues(logs.attributes)['etl.records.in']);
    }
    expect(deadLettered).toBe(1);
    expect(recordsIn).toBe(LINES.length);

    // One commit span per sink per checkpoint, linked to each batch span the sink wrote before its cut.
    for (const sink of ['copy', 'archive', 'rejects']) {
      const own = commits.filter((c) => c.name === `commit ${sink}`);
      expect(own.length, sink).toBeGreaterThan(0);
      for (const commit of own) {
        expect(commit.parentSpanId ?? '').toBe('');
        expect(attributeValues(commit.attributes)).toMatchObject({ 'etl.stage': sink, 'etl.stage.kind': 'sink' });
        expect(attributeValues(commit.attributes)['etl.checkpoint.id']).toEqual(expect.any(Number));
      }
      const linked = own.flatMap((c) => (c.links ?? []).map(key)).sort();
      const written = spans
        .filter((s) => s.name === sink)
        .map(key)
        .sort();
      expect(linked, sink).toEqual(written);
    }

    const resource = attributeValues(spans[0]?.resource ?? []);
    expect(resource).toMatchObject({
      'service.name': 'etl',
      'service.version': packageJson.version,
      'etl.pipeline': 'fanout',
      'host.name': hostname(),
    });
  });
});

/** Emits one batch per traceparent given (undefined: none), two records each. */
const tracedSource = defineSource({
  type: 'test_traced',
  stability: 'alpha',
  summary: 'emits a batch per traceparent',
  schema: { $id: 'test_traced', type: 'object' } as const,
  examples: [],
  outputs: { default: 'any' },
  create(options: { parents: (string | null)[] }) {
    return {
      async run(out) {
        let n = 0;
        for (const traceparent of options.parents) {
          const records: EtlRecord[] = [{ id: n++ }, { id: n++ }];
          await out.emit(records, n, undefined, traceparent === null ? undefined : { traceparent });
        }
      },
    };
  },
});

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

async function runTraced(parents: (string | null)[], sampleRatio?: number, env: NodeJS.ProcessEnv = {}) {
  collector = await startCollector();
  const telemetry = await createTelemetry(
    { traces: 'otlp', otlpEndpoint: collector.url, ...(sampleRatio === undefined ? {} : { sampleRatio }) },
    { env },
  );
  const spec = pipeline('traced', mkdtempSync(join(tmpdir(), 'etl-traceparent-')), [
    stage({ id: 'push', def: tracedSource, options: { parents } }),
    stage({ id: 'out', def: collectSink, inputs: ['push'], options: { name: 'traced' } }),
  ]);
  const result = await runPipeline(spec, { telemetry });
  await telemetry.shutdown();
  expect(result.ok).toBe(true);
  return receivedSpans(collector);
}

describe('W3C trace context arriving with a batch', () => {
  it('is continued: the source span is the child of the remote parent, in its trace', async () => {
    const spans = await runTraced([`00-${TRACE_ID}-${PARENT_ID}-01`, null, 'not-a-traceparent']);
    const push = spans.filter((s) => s.name === 'push');
    expect(push).toHaveLength(3);
    const continued = push.find((s) => s.traceId === TRACE_ID) as ReceivedSpan;
    expect(continued.parentSpanId).toBe(PARENT_ID);
    const out = spans.find((s) => s.name === 'out' && s.traceId === TRACE_ID);
    expect(out?.parentSpanId).toBe(continued.spanId);
    // Without one, or with a malformed one, the batch starts a trace of its own.
    const roots = push.filter((s) => s !== continued);
    expect(roots.map((s) => s.parentSpanId ?? '')).toEqual(['', '']);
    expect(new Set(roots.map((s) => s.traceId)).size).toBe(2);
    expect(roots.some((s) => s.traceId === TRACE_ID)).toBe(false);
  });

  it("follows the parent's decision: an unsampled parent records nothing, whatever the ratio", async () => {
    const spans = await runTraced([`00-${TRACE_ID}-${PARENT_ID}-00`, `00-${TRACE_ID}-${PARENT_ID}-01`], 1);
    const traced = spans.filter((s) => s.name !== 'commit out');
    expect(traced.map((s) => s.name).sort()).toEqual(['out', 'push']);
    const commit = spans.find((s) => s.name === 'commit out');
    expect(commit?.links?.map(key)).toEqual(spans.filter((s) => s.name === 'out').map(key));
  });
});

/** Records the `traceparent` each write is given (what a sink carries on in message headers). */
const traceparentsSeen: Array<string | undefined> = [];
const traceparentSink = defineSink({
  type: 'test_traceparent',
  stability: 'alpha',
  summary: 'records the traceparent of each write',
  schema: { $id: 'test_traceparent', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  create: () => ({
    write(_records, ctx) {
      traceparentsSeen.push(ctx.traceparent);
    },
  }),
});

describe('a sink carrying the trace on', () => {
  it("is given its own span of the batch as a traceparent, in the batch's trace", async () => {
    collector = await startCollector();
    const telemetry = await createTelemetry({ traces: 'otlp', otlpEndpoint: collector.url }, { env: {} });
    const spec = pipeline('carried', mkdtempSync(join(tmpdir(), 'etl-traceparent-sink-')), [
      stage({ id: 'push', def: tracedSource, options: { parents: [`00-${TRACE_ID}-${PARENT_ID}-01`] } }),
      stage({ id: 'out', def: traceparentSink, inputs: ['push'], options: {} }),
    ]);
    traceparentsSeen.length = 0;
    const result = await runPipeline(spec, { telemetry });
    await telemetry.shutdown();
    expect(result.ok).toBe(true);
    const out = receivedSpans(collector).find((s) => s.name === 'out') as ReceivedSpan;
    expect(out.traceId).toBe(TRACE_ID);
    expect(traceparentsSeen).toEqual([`00-${TRACE_ID}-${out.spanId}-01`]);
  });

  it('is given none when tracing is off', async () => {
    const spec = pipeline('untraced', mkdtempSync(join(tmpdir(), 'etl-traceparent-off-')), [
      stage({ id: 'push', def: tracedSource, options: { parents: [`00-${TRACE_ID}-${PARENT_ID}-01`] } }),
      stage({ id: 'out', def: traceparentSink, inputs: ['push'], options: {} }),
    ]);
    traceparentsSeen.length = 0;
    expect((await runPipeline(spec, {})).ok).toBe(true);
    expect(traceparentsSeen).toEqual([undefined]);
  });
});

describe('sampling', () => {
  it('sample_ratio 0 records no batch and so no commit; a sampled parent is still followed', async () => {
    const spans = await runTraced([null, null, `00-${TRACE_ID}-${PARENT_ID}-01`], 0);
    expect(spans.map((s) => s.name).sort()).toEqual(['commit out', 'out', 'push']);
    expect(spans.every((s) => s.name === 'commit out' || s.traceId === TRACE_ID)).toBe(true);
  });

  it('honours OTEL_TRACES_SAMPLER when the pipeline sets no ratio, and the ratio wins over it', async () => {
    expect(await runTraced([null, null], undefined, { OTEL_TRACES_SAMPLER: 'always_off' })).toEqual([]);
    const spans = await runTraced([null], 1, { OTEL_TRACES_SAMPLER: 'always_off' });
    expect(spans.map((s) => s.name).sort()).toEqual(['commit out', 'out', 'push']);
  });
});

/** Holds every record and emits their count when its input ends: many batches in, one out. */
const countAtEnd = defineTransform({
  type: 'test_count_at_end',
  stability: 'alpha',
  summary: 'emits the number of records at the end',
  schema: { $id: 'test_count_at_end', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  outputs: { default: 'any' },
  create() {
    let count = 0;
    return {
      process(records) {
        count += records.length;
        return {};
      },
      flush() {
        return { default: [{ count }] };
      },
    };
  },
});

describe('fan-in', () => {
  it("a stage's output at the end of its input links the batches it came from", async () => {
    collector = await startCollector();
    const telemetry = await createTelemetry({ traces: 'otlp', otlpEndpoint: collector.url }, { env: {} });
    const spec = pipeline('fanin', mkdtempSync(join(tmpdir(), 'etl-fanin-')), [
      stage({ id: 'push', def: tracedSource, options: { parents: [null, null, null] } }),
      stage({ id: 'count', def: countAtEnd, inputs: ['push'] }),
      stage({ id: 'out', def: collectSink, inputs: ['count'], options: { name: 'fanin' } }),
    ]);
    const result = await runPipeline(spec, { telemetry });
    await telemetry.shutdown();
    expect(result.ok).toBe(true);
    expect(collected.get('fanin')).toEqual([{ count: 6 }]);

    const spans = receivedSpans(collector);
    const counts = spans.filter((s) => s.name === 'count');
    const output = counts.find((s) => (s.links ?? []).length > 0) as ReceivedSpan;
    expect(output.parentSpanId ?? '').toBe('');
    expect(attributeValues(output.attributes)['etl.records.out']).toBe(1);
    const batchSpans = counts.filter((s) => s !== output);
    expect(batchSpans).toHaveLength(3);
    expect((output.links ?? []).map(key).sort()).toEqual(batchSpans.map(key).sort());
    // The sink's span of that record is in the output's trace.
    const out = spans.find((s) => s.name === 'out');
    expect(out?.traceId).toBe(output.traceId);
    expect(out?.parentSpanId).toBe(output.spanId);
  });
});
