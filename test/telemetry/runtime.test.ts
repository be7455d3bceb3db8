/** Telemetry through the real runtime: every batch one trace source → transform → sink, counters agree. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { defineTransform } from '../../engine/operator.ts';
import { noopTelemetry } from '../../engine/runtime/noop.ts';
import { runPipeline } from '../../engine/runtime/run.ts';
import { createTelemetry } from '../../engine/telemetry/telemetry.ts';
import type { Telemetry } from '../../engine/telemetry/types.ts';
import { collected, collectSink, countingSource, passThrough } from '../support/operators.ts';
import { pipeline, stage } from '../support/spec.ts';
import { type FakeCollector, startCollector } from './collector.ts';

interface Span {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  links?: { traceId: string; spanId: string }[];
}

let collector: FakeCollector | undefined;
afterEach(async () => {
  await collector?.close();
  collected.clear();
});

it('traces each batch from source to sink and counts it', async () => {
  collector = await startCollector();
  const telemetry = await createTelemetry({ traces: 'otlp', otlpEndpoint: collector.url }, { env: {} });
  const spec = pipeline('traced', mkdtempSync(join(tmpdir(), 'etl-telemetry-')), [
    stage({ id: 'src', def: countingSource, options: { count: 250, batch: 100 } }),
    stage({ id: 'pass', def: passThrough, inputs: ['src'] }),
    stage({ id: 'out', def: collectSink, inputs: ['pass'], options: { name: 'out' } }),
  ]);
  const result = await runPipeline(spec, { telemetry });
  const metrics = await telemetry.metricsText();
  await telemetry.shutdown();
  expect(result.ok).toBe(true);

  const spans = collector.exports.flatMap((e) => {
    const body = JSON.parse(e.body.toString('utf8')) as {
      resourceSpans: { scopeSpans: { spans: Span[] }[] }[];
    };
    return body.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans));
  });
  const commits = spans.filter((s) => s.name === 'commit out');
  const traces = Map.groupBy(
    spans.filter((s) => !commits.includes(s)),
    (s) => s.traceId,
  );
  expect(traces.size).toBe(3);
  // The final checkpoint made all three batches durable in `out`.
  expect(commits).toHaveLength(1);
  const outSpans = spans.filter((s) => s.name === 'out').map((s) => `${s.traceId}/${s.spanId}`);
  expect(commits[0]?.links?.map((l) => `${l.traceId}/${l.spanId}`).sort()).toEqual(outSpans.sort());
  for (const trace of traces.values()) {
    const byName = new Map(trace.map((s) => [s.name, s]));
    expect([...byName.keys()].sort()).toEqual(['out', 'pass', 'src']);
    expect(byName.get('src')?.parentSpanId ?? '').toBe('');
    expect(byName.get('pass')?.parentSpanId).toBe(byName.get('src')?.spanId);
    expect(byName.get('out')?.parentSpanId).toBe(byName.get('pass')?.spanId);
  }

  expect(metrics).toMatch(/etl_component_received_records_total\{[^}]*component_id="out"[^}]*\} 250/);
  expect(metrics).toMatch(/etl_component_sent_records_total\{[^}]*component_id="src"[^}]*port="default"\} 250/);
});

/** A transform whose every batch fails. */
const failingTransform = defineTransform({
  type: 'test_failing',
  stability: 'alpha',
  summary: 'fails every batch',
  schema: { $id: 'test_failing', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  outputs: { default: 'any' },
  create: () => ({
    process() {
      throw new Error('batch refused');
    },
  }),
});

it('ends every batch span once, with the error and its dead-letter count, when a stage dead-letters a failed batch', async () => {
  const ends: Array<{ stage: string; out: number; error: boolean; deadLettered: number | undefined }> = [];
  const telemetry: Telemetry = {
    ...noopTelemetry,
    tracing: true,
    stage: (_pipeline, stageId) => ({
      ...noopTelemetry.stage('', stageId, '', ''),
      startBatch: () => ({
        context: undefined,
        sampled: true,
        end: (out, error, deadLettered) => ends.push({ stage: stageId, out, error: !!error, deadLettered }),
      }),
    }),
  };
  const spec = pipeline('spans', mkdtempSync(join(tmpdir(), 'etl-telemetry-')), [
    stage({ id: 'src', def: countingSource, options: { count: 30, batch: 10 } }),
    stage({ id: 'boom', def: failingTransform, inputs: ['src'], onError: 'dead_letter' }),
    stage({ id: 'out', def: collectSink, inputs: ['boom'], options: { name: 'spans' } }),
    stage({ id: 'dl', def: collectSink, inputs: ['boom.dead_letter'], options: { name: 'spans-dl' } }),
  ]);
  const result = await runPipeline(spec, { telemetry });
  expect(result.ok).toBe(true);
  const boom = ends.filter((e) => e.stage === 'boom');
  expect(boom).toEqual([
    { stage: 'boom', out: 10, error: true, deadLettered: 10 },
    { stage: 'boom', out: 10, error: true, deadLettered: 10 },
    { stage: 'boom', out: 10, error: true, deadLettered: 10 },
  ]);
});
