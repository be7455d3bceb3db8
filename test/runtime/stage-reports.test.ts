/**
 * `Transform.summarize`: what a stage tells of its run lands in the summary, and a report's failure fails the
 * run once everything was delivered and checkpointed (a rerun finds nothing left to do).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EtlError } from '../../engine/errors.ts';
import { defineTransform, type OperatorDefinition } from '../../engine/operator.ts';
import { runPipeline } from '../../engine/runtime/run.ts';
import { summary } from '../../engine/telemetry/progress.ts';
import { collected, collectSink, countingSource } from '../support/operators.ts';
import { pipeline, stage } from '../support/spec.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-stage-reports-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Counts what passes; fails the run when it saw fewer than `min` records. */
const reporting = defineTransform({
  type: 'test_reporting',
  stability: 'alpha',
  summary: 'counts records and reports them',
  schema: { $id: 'test_reporting', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  outputs: { default: 'any' },
  create(options: { min: number }) {
    let seen = 0;
    return {
      process(records) {
        seen += records.length;
        return { default: records };
      },
      summarize: () => ({
        lines: [`${seen} records seen`, 'second line'],
        ...(seen < options.min ? { failure: `saw ${seen}, fewer than ${options.min}` } : {}),
      }),
    };
  },
});

function spec(name: string, min: number) {
  return pipeline(name, join(dir, name), [
    stage({ id: 'src', def: countingSource as OperatorDefinition, options: { count: 250 } }),
    stage({ id: 'counted', def: reporting as OperatorDefinition, inputs: ['src'], options: { min } }),
    stage({ id: 'out', def: collectSink as OperatorDefinition, inputs: ['counted'], options: { name } }),
  ]);
}

describe('stage reports', () => {
  it('are shown in the summary of a run that succeeds', async () => {
    collected.set('reports-ok', []);
    const result = await runPipeline(spec('reports-ok', 100));
    expect(result.ok).toBe(true);
    expect(result.stats.reports).toEqual([{ stage: 'counted', lines: ['250 records seen', 'second line'] }]);
    expect(summary(result.stats, { ok: true, stopped: false })).toContain(
      '  counted          250 records seen\n                   second line\n',
    );
  });

  it('fail the run with their message once everything was delivered and checkpointed', async () => {
    collected.set('reports-fail', []);
    const result = await runPipeline(spec('reports-fail', 1000));
    expect(result.ok).toBe(false);
    expect(result.error).toBeInstanceOf(EtlError);
    expect((result.error as EtlError).code).toBe('ETL_RUN_CHECK_FAILED');
    expect(result.error?.message).toBe('stage counted: saw 250, fewer than 1000');
    expect(result.stats.reports[0]?.failure).toBe('saw 250, fewer than 1000');
    expect(collected.get('reports-fail')).toHaveLength(250);
    expect(result.stats.checkpoints).toBeGreaterThan(0);
    const rerun = await runPipeline(spec('reports-fail', 0));
    expect(rerun.ok).toBe(true);
    expect(rerun.stats.recordsIn).toBe(0);
    expect(collected.get('reports-fail')).toHaveLength(250);
  });
});
