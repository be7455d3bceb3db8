/**
 * Transform state through the real runtime: inline snapshots and keyed state carry over a stop and rerun,
 * flush emits what a stage holds, two-phase hooks follow the checkpoints, and retries (transforms and
 * sinks) deliver every record once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import type { EtlRecord } from '../../engine/record.ts';
import { runPipeline } from '../../engine/runtime/run.ts';
import { StateStore } from '../../engine/state/store.ts';
import { collected, collectSink, countingSource, countingTransform, transformPhases } from '../support/operators.ts';
import { pipeline, stage } from '../support/spec.ts';

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'etl-state-'));
  made.push(dir);
  return dir;
};

beforeEach(() => {
  collected.clear();
  transformPhases.clear();
});

const COUNT = 5000;
const KEYS = 7;

const counted = (name: string) => collected.get(name) ?? [];

/** What an uninterrupted run emits: for record i, its key's count so far and the total seen. */
function expected(): Array<{ key: string; count: number; seen: number }> {
  const counts = new Map<string, number>();
  return Array.from({ length: COUNT }, (_, i) => {
    const key = `k${i % KEYS}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    return { key, count: counts.get(key) as number, seen: i + 1 };
  });
}

const shape = (records: readonly EtlRecord[]) =>
  records.map((r) => ({ key: r.key as string, count: r.count as number, seen: r.seen as number }));

function build(dir: string, name: string, extra: { fail_first?: number; hold?: boolean } = {}, count = COUNT) {
  return pipeline(
    'stateful',
    dir,
    [
      stage({ id: 'src', def: countingSource, options: { count, batch: 100 } }),
      stage({
        id: 'count',
        def: countingTransform,
        inputs: ['src'],
        options: { keys: KEYS, ...extra },
        onError: extra.fail_first ? 'retry' : 'dead_letter',
      }),
      stage({ id: 'out', def: collectSink, inputs: ['count'], options: { name } }),
    ],
    { checkpointIntervalMs: 5 },
  );
}

describe('transform state', () => {
  it('carries keyed and inline state over to a rerun: the output is that of one run', async () => {
    const dir = tempDir();
    // The first run reads the first 2,000 records and ends; the rerun, with more input, resumes after them.
    const first = await runPipeline(build(dir, 'state', {}, 2000));
    expect(first.ok).toBe(true);
    expect(counted('state')).toHaveLength(2000);
    const state = await new StateStore(dir, 'stateful').load();
    expect(state?.committed?.transforms).toEqual({ count: { seen: 2000 } });
    expect(state?.committed?.keyed).toEqual({ 'count.counts': { file: 'count.counts.1.log', generation: 1 } });
    expect(state?.committed?.stages).toMatchObject({ count: 'transform:test_counting' });

    const rest = await runPipeline(build(dir, 'state'));
    expect(rest.ok).toBe(true);
    expect(rest.stats.recordsIn).toBe(COUNT - 2000);
    expect(shape(counted('state'))).toEqual(expected());
  });

  it('calls the two-phase hooks at every checkpoint, phase one before phase two', async () => {
    const result = await runPipeline(build(tempDir(), 'phases'));
    expect(result.ok).toBe(true);
    const phases = transformPhases.get('count') ?? [];
    expect(phases.length).toBe(result.stats.checkpoints * 2);
    for (let i = 0; i < phases.length; i += 2) {
      const id = (phases[i] as string).split(' ')[1];
      expect(phases.slice(i, i + 2)).toEqual([`prepare ${id}`, `commit ${id}`]);
    }
  });

  it('emits on flush what a stage held back', async () => {
    const result = await runPipeline(build(tempDir(), 'held', { hold: true }));
    expect(result.ok).toBe(true);
    expect(shape(counted('held'))).toEqual(expected());
  });

  it('retries a transform batch after a retriable error (on_error: retry): every record once', async () => {
    const result = await runPipeline(build(tempDir(), 'retried', { fail_first: 2 }));
    expect(result.ok).toBe(true);
    expect(result.stats.errors).toBe((COUNT / 100) * 2);
    expect(shape(counted('retried'))).toEqual(expected());
  });
});

describe('sink retries', () => {
  it('retries a write after a retriable error: every record once, the errors counted', async () => {
    const spec = pipeline('sink-retry', tempDir(), [
      stage({ id: 'src', def: countingSource, options: { count: 1000, batch: 100 } }),
      stage({ id: 'out', def: collectSink, inputs: ['src'], options: { name: 'retry', fail_first_writes: 3 } }),
    ]);
    const result = await runPipeline(spec);
    expect(result.ok).toBe(true);
    expect(result.stats.errors).toBe(3);
    expect(counted('retry').map((r) => r.id)).toEqual(Array.from({ length: 1000 }, (_, i) => `src-${i}`));
  });
});
