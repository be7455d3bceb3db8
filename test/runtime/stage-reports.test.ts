/**
 * `Transform.summarize`: what a stage tells of its run lands in the summary, and a report's failure fails the
 * run once everything was delivered and checkpointed (a rerun finds nothing left to do).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { PipelineSettings } from '../../engine/config/types.ts';
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
        counts: { seen },
        ...(seen < options.min ? { failure: `saw ${seen}, fewer than ${options.min}` } : {}),
      }),
    };
  },
});

function spec(name: string, min: number, settings: Partial<PipelineSettings> = {}) {
  return pipeline(
    name,
    join(dir, name),
    [
      stage({ id: 'src', def: countingSource as OperatorDefinition, options: { count: 250 } }),
      stage({ id: 'counted', def: reporting as OperatorDefinition, inputs: ['src'], options: { min } }),
      stage({ id: 'out', def: collectSink as OperatorDefinition, inputs: ['counted'], options: { name } }),
    ],
    settings,
  );
}

describe('stage reports', () => {
  it('are shown in the summary of a run that succeeds', async () => {
    collected.set('reports-ok', []);
    const result = await runPipeline(spec('reports-ok', 100));
    expect(result.ok).toBe(true);
    expect(result.stats.reports).toEqual([
      { stage: 'counted', lines: ['250 records seen', 'second line'], counts: { seen: 250 } },
    ]);
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

  it('are recorded in the audit log, a line per run, failed runs too', async () => {
    const auditLog = join(dir, 'audit', 'reports.jsonl');
    collected.set('reports-audit', []);
    expect((await runPipeline(spec('reports-audit', 1000, { auditLog }))).ok).toBe(false);
    expect((await runPipeline(spec('reports-audit', 0, { auditLog }))).ok).toBe(true);
    const lines = readFileSync(auditLog, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toMatchObject([
      {
        pipeline: 'reports-audit',
        outcome: 'failed',
        error: 'stage counted: saw 250, fewer than 1000',
        records_read: 250,
        written: { out: 250 },
        stages: { counted: { seen: 250 } },
      },
      { pipeline: 'reports-audit', outcome: 'succeeded', records_read: 0, stages: { counted: { seen: 0 } } },
    ]);
  });

  it('fail the run when its audit log cannot be appended to', async () => {
    collected.set('reports-no-audit', []);
    // A directory where the file should be.
    const result = await runPipeline(spec('reports-no-audit', 0, { auditLog: dir }));
    expect(result.ok).toBe(false);
    expect((result.error as EtlError).code).toBe('ETL_AUDIT_FAILED');
    expect(collected.get('reports-no-audit')).toHaveLength(250);
  });
});
