/** What the runtime measures of a run: backlog on an edge held up by a slow sink, retries, dead letters, commits. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { EtlError } from '../../engine/errors.ts';
import { defineSink, defineTransform } from '../../engine/operator.ts';
import { deadLetter, type EtlRecord } from '../../engine/record.ts';
import { runPipeline } from '../../engine/runtime/run.ts';
import { createTelemetry, type EtlTelemetry } from '../../engine/telemetry/telemetry.ts';
import { countingSource } from '../support/operators.ts';
import { parseExposition, seriesValue } from '../support/prometheus.ts';
import { pipeline, stage } from '../support/spec.ts';

/** Dead-letters every record whose number ends in 0. */
const tenthRejected = defineTransform({
  type: 'test_tenth_rejected',
  stability: 'alpha',
  summary: 'dead-letters one record in ten',
  schema: { $id: 'test_tenth_rejected', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  outputs: { default: 'any' },
  create(_options, ctx) {
    return {
      process(records: EtlRecord[]) {
        const kept: EtlRecord[] = [];
        const dead: EtlRecord[] = [];
        for (const r of records) {
          if (String(r.id).endsWith('0')) dead.push(deadLetter(r, ctx.id, 'ends in 0'));
          else kept.push(r);
        }
        return { default: kept, dead_letter: dead };
      },
    };
  },
});

/** A sink whose first write waits until the test lets it go, then fails once (retriable) and takes the rest. */
let entered: () => void = () => {};
let release: () => void = () => {};
const heldSink = defineSink({
  type: 'test_held',
  stability: 'alpha',
  summary: 'holds its first write, fails it once',
  schema: { $id: 'test_held', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  create() {
    let writes = 0;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    return {
      async write() {
        writes++;
        if (writes === 1) {
          entered();
          await gate;
          throw new EtlError('ETL_RUN_SINK_FAILED', 'not now', { retriable: true });
        }
      },
    };
  },
});

const opened: EtlTelemetry[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((t) => t.shutdown()));
});

it('shows the backlog behind a held sink, then counts its retry, the dead letters and what was committed', async () => {
  const telemetry = await createTelemetry({ traces: 'none' }, { env: {} });
  opened.push(telemetry);
  const spec = pipeline('measured', mkdtempSync(join(tmpdir(), 'etl-runtime-metrics-')), [
    stage({ id: 'src', def: countingSource, options: { count: 1000, batch: 100 } }),
    stage({ id: 'reject', def: tenthRejected, inputs: ['src'] }),
    stage({ id: 'out', def: heldSink, inputs: ['reject'] }),
  ]);
  const inside = new Promise<void>((resolve) => {
    entered = resolve;
  });
  const running = runPipeline(spec, { telemetry });
  await inside;
  // The sink holds its first batch: the source runs out of credit (4 batches in flight) and waits.
  const held = parseExposition(await telemetry.metricsText());
  const edge = (families: typeof held, from: string, to: string) =>
    seriesValue(families, 'etl_edge_inflight_batches', { pipeline: 'measured', from, to });
  expect(edge(held, 'reject', 'out')).toBeGreaterThanOrEqual(1);
  expect(seriesValue(held, 'etl_pipeline_up', { pipeline: 'measured' })).toBe(1);
  release();
  const result = await running;
  expect(result.ok).toBe(true);

  const families = parseExposition(await telemetry.metricsText());
  const SRC = { pipeline: 'measured', component_id: 'src' };
  const REJECT = { pipeline: 'measured', component_id: 'reject' };
  const OUT = { pipeline: 'measured', component_id: 'out' };
  expect(seriesValue(families, 'etl_component_batches_total', SRC)).toBe(10);
  expect(seriesValue(families, 'etl_source_credit_wait_seconds_count', SRC)).toBe(10);
  // Not a source of raw lines: no line is counted.
  expect(seriesValue(families, 'etl_source_read_lines_total', SRC)).toBe(0);
  expect(seriesValue(families, 'etl_component_dead_lettered_records_total', REJECT)).toBe(100);
  expect(
    seriesValue(families, 'etl_component_discarded_records_total', { ...REJECT, reason: 'dead_letter_unread' }),
  ).toBe(100);
  expect(seriesValue(families, 'etl_component_batch_duration_seconds_count', REJECT)).toBe(10);
  expect(seriesValue(families, 'etl_sink_retries_total', OUT)).toBe(1);
  expect(seriesValue(families, 'etl_sink_write_duration_seconds_count', OUT)).toBe(11);
  expect(seriesValue(families, 'etl_component_batches_total', OUT)).toBe(10);
  expect(seriesValue(families, 'etl_sink_committed_records_total', OUT)).toBe(900);
  expect(seriesValue(families, 'etl_freshness_read_seconds_count', OUT)).toBe(900);
  // The records carry no event time.
  expect(seriesValue(families, 'etl_freshness_event_seconds_count', OUT)).toBe(0);
  expect(seriesValue(families, 'etl_checkpoint_duration_seconds_count', { pipeline: 'measured' })).toBeGreaterThan(0);
  expect(edge(families, 'src', 'reject')).toBe(0);
  expect(edge(families, 'reject', 'out')).toBe(0);
  expect(seriesValue(families, 'etl_pipeline_up', { pipeline: 'measured' })).toBe(0);
});
