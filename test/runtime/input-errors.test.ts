/**
 * `SourceOutput.inputError`: a source reports an input it could not read completely and goes on. The run
 * succeeds and delivers the rest, but the error is logged, counted in the summary's errors and in
 * `etl_component_errors_total{phase="read"}`, and makes the outcome say so.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defineSource, type OperatorDefinition } from '../../engine/operator.ts';
import type { EtlRecord } from '../../engine/record.ts';
import { runPipeline } from '../../engine/runtime/run.ts';
import { summary } from '../../engine/telemetry/progress.ts';
import { createTelemetry } from '../../engine/telemetry/telemetry.ts';
import { recordingContext } from '../support/context.ts';
import { collected, collectSink } from '../support/operators.ts';
import { pipeline, stage } from '../support/spec.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-input-errors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Emits two good inputs and reports the one in between as unreadable. */
const partlyUnreadable = defineSource({
  type: 'test_partly_unreadable',
  stability: 'alpha',
  summary: 'two good inputs around an unreadable one',
  schema: { $id: 'test_partly_unreadable', type: 'object' } as const,
  examples: [],
  outputs: { default: 'any' },
  create: () => ({
    async run(out) {
      await out.emit([{ message: 'a' } as EtlRecord], 1);
      out.inputError('b.gz is corrupt; none of its lines were emitted', { file: 'b.gz', offset: 0 });
      await out.emit([{ message: 'c' } as EtlRecord], 3);
    },
  }),
});

describe('input errors reported by a source', () => {
  it('are logged, counted in errors and metrics, and do not stop the other inputs', async () => {
    const logs = recordingContext();
    const telemetry = await createTelemetry({ traces: 'none' }, { logger: logs.logger });
    try {
      const spec = pipeline('input-errors', join(dir, '.etl'), [
        stage({ id: 'src', def: partlyUnreadable as OperatorDefinition }),
        stage({
          id: 'out',
          def: collectSink as OperatorDefinition,
          inputs: ['src'],
          options: { name: 'input-errors' },
        }),
      ]);
      collected.set('input-errors', []);
      const result = await runPipeline(spec, { telemetry, logger: () => logs.logger });
      expect(result.ok).toBe(true);
      expect(collected.get('input-errors')?.map((r) => r.message)).toEqual(['a', 'c']);
      expect(result.stats.errors).toBe(1);
      expect(result.stats.inputErrors).toBe(1);
      const logged = logs.logs.find((e) => e.level === 'error');
      expect(logged).toMatchObject({
        message: 'b.gz is corrupt; none of its lines were emitted',
        fields: { file: 'b.gz' },
      });
      expect(await telemetry.metricsText()).toMatch(
        /etl_component_errors_total\{[^}]*component_id="src"[^}]*phase="read"[^}]*\} 1/,
      );
      const text = summary(result.stats, { ok: true, stopped: false });
      expect(text).toMatch(/errors\s+1\n/);
      expect(text).toContain('outcome          completed, but 1 input could not be read completely (logged above)');
    } finally {
      await telemetry.shutdown();
    }
  });
});
