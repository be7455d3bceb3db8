/**
 * Late dead letters: records a sink finds refused only when it makes them durable (at a checkpoint's phase
 * one) reach the sink's dead_letter port, with their origin, exactly once — also when the run fails after the
 * checkpoint that found them, and when the last checkpoint of a finite run finds them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { defineSink, type Sink } from '../../engine/operator.ts';
import { type EtlRecord, ORIGIN } from '../../engine/record.ts';
import { runPipeline } from '../../engine/runtime/run.ts';
import { StateStore } from '../../engine/state/store.ts';
import { collected, collectSink, countingSource } from '../support/operators.ts';
import { pipeline, stage } from '../support/spec.ts';

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'etl-late-'));
  made.push(dir);
  return dir;
};

beforeEach(() => collected.clear());

/** Takes every write; at each checkpoint refuses (dead-letters) the records whose id ends with 7. */
const refusingSink = defineSink({
  type: 'test_refusing',
  stability: 'alpha',
  summary: 'refuses records at phase one',
  schema: { $id: 'test_refusing', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  create(options: { name: string }) {
    const bucket = collected.get(options.name) ?? [];
    collected.set(options.name, bucket);
    let open: EtlRecord[] = [];
    const sink: Sink = {
      async write(records) {
        // A little time per batch, so that checkpoints come during the run, not only at its end.
        await new Promise((resolve) => setTimeout(resolve, 1));
        open.push(...records);
      },
      async prepareCommit(_snapshot, ctx) {
        for (const record of open) {
          if (String(record.id).endsWith('7')) ctx.deadLetter(record, 'refused at the commit');
          else bucket.push(record);
        }
        open = [];
        return undefined;
      },
    };
    return sink;
  },
});

const ids = (name: string) => (collected.get(name) ?? []).map((r) => String(r.id));
const sevens = (count: number) => Array.from({ length: count }, (_, i) => `src-${i}`).filter((id) => id.endsWith('7'));

function build(dir: string, count: number, dl: Partial<{ fail_always: boolean }> = {}) {
  return pipeline(
    'late',
    dir,
    [
      stage({ id: 'src', def: countingSource, options: { count, batch: 50 } }),
      stage({ id: 'out', def: refusingSink, inputs: ['src'], options: { name: 'kept' } }),
      stage({ id: 'dl', def: collectSink, inputs: ['out.dead_letter'], options: { name: 'late', ...dl } }),
    ],
    { checkpointIntervalMs: 5 },
  );
}

describe('late dead letters', () => {
  it('reach the dead_letter port once each, with reason and origin, during the run and at its end', async () => {
    const result = await runPipeline(build(tempDir(), 3000));
    expect(result.ok).toBe(true);
    expect(result.stats.checkpoints).toBeGreaterThan(2);
    expect(ids('kept')).toHaveLength(3000 - 300);
    const letters = collected.get('late') ?? [];
    expect(letters.map((l) => (l.origin as { line: number }).line - 1).map((i) => `src-${i}`)).toEqual(sevens(3000));
    expect(letters[0]).toMatchObject({ stage: 'out', reason: 'refused at the commit' });
    expect(letters[0]?.[ORIGIN]).toMatchObject({ source: 'src' });
    expect(result.stats.rejected).toBe(300);
    expect(result.stats.sinks.dl?.written).toBe(300);
  });

  it('are sent again by a rerun when the run failed before they were stored', async () => {
    const dir = tempDir();
    // The dead-letter sink refuses every write: the first late letters sent fail the run, after the
    // checkpoint that found them committed.
    const first = await runPipeline(build(dir, 3000, { fail_always: true }));
    expect(first.ok).toBe(false);
    const state = await new StateStore(dir, 'late').load();
    expect(Object.values(state?.committed?.late ?? {}).flat().length).toBeGreaterThan(0);
    collected.clear();
    const second = await runPipeline(build(dir, 3000));
    expect(second.ok).toBe(true);
    const lines = (collected.get('late') ?? []).map((l) => (l.origin as { line: number }).line - 1);
    expect(new Set(lines).size).toBe(lines.length);
    expect(lines.sort((a, b) => a - b).map((i) => `src-${i}`)).toEqual(sevens(3000));
  });
});
