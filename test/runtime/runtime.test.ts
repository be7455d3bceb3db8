import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { defineTransform } from '../../engine/operator.ts';
import type { EtlRecord } from '../../engine/record.ts';
import { runPipeline } from '../../engine/runtime/run.ts';
import { StateStore } from '../../engine/state/store.ts';
import {
  collected,
  collectSink,
  commits,
  committingSink,
  countingSource,
  ledgerSink,
  ledgers,
  passThrough,
  sourceLog,
} from '../support/operators.ts';
import { pipeline, stage } from '../support/spec.ts';

const made: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'etl-runtime-'));
  made.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});
const ids = (name: string) => (collected.get(name) ?? []).map((r) => String(r.id));

beforeEach(() => {
  collected.clear();
  commits.clear();
  ledgers.clear();
  sourceLog.length = 0;
});

describe('runtime', () => {
  it('gives the event loop turns while a source whose batches are handled synchronously runs', async () => {
    const count = 300_000;
    const spec = pipeline('busy', tempDir(), [
      stage({ id: 'src', def: countingSource, options: { count } }),
      stage({ id: 'a', def: passThrough, inputs: ['src'] }),
      stage({ id: 'out', def: collectSink, inputs: ['a'], options: { name: 'busy' } }),
    ]);
    const run = runPipeline(spec);
    // Timers, signals, I/O and other pipelines in the process are macrotasks: one scheduled now must run
    // while the pipeline is still busy, not once it is done.
    let emittedWhenTimerRan = -1;
    setTimeout(() => {
      emittedWhenTimerRan = sourceLog.at(-1)?.emitted ?? 0;
    }, 0);
    expect((await run).ok).toBe(true);
    expect(emittedWhenTimerRan).toBeGreaterThanOrEqual(0);
    expect(emittedWhenTimerRan).toBeLessThan(count);
  });

  it('carries every record from source to sink, in order', async () => {
    const spec = pipeline('linear', tempDir(), [
      stage({ id: 'src', def: countingSource, options: { count: 1050 } }),
      stage({ id: 'a', def: passThrough, inputs: ['src'] }),
      stage({ id: 'b', def: passThrough, inputs: ['a'] }),
      stage({ id: 'out', def: collectSink, inputs: ['b'], options: { name: 'out', delay_ms: 1 } }),
    ]);
    const result = await runPipeline(spec);
    expect(result.ok).toBe(true);
    expect(ids('out')).toEqual(Array.from({ length: 1050 }, (_, i) => `src-${i}`));
    expect(result.stats.recordsIn).toBe(1050);
    expect(result.stats.recordsOut).toBe(1050);
    expect(result.stats.checkpoints).toBeGreaterThanOrEqual(1);
    expect(result.stopped).toBe(false);
  });

  it('tells its figures once it runs, before any record: the progress of a pipeline waiting for input shows it', async () => {
    const seen: string[] = [];
    const spec = pipeline('waiting', tempDir(), [
      stage({ id: 'src', def: countingSource, options: { count: 3 } }),
      stage({ id: 'out', def: collectSink, inputs: ['src'], options: { name: 'waiting' } }),
    ]);
    const result = await runPipeline(spec, {
      onRunning: () => seen.push('running'),
      onStats: (stats) => seen.push(`${stats.recordsIn} in ${stats.recordsOut} out`),
    });
    expect(result.ok).toBe(true);
    expect(seen.slice(0, 2)).toEqual(['running', '0 in 0 out']);
    expect(seen.at(-1)).toBe('3 in 3 out');
  });

  it('delivers to every sink exactly the multiset its paths imply, for random DAGs (fan-in and fan-out)', async () => {
    const dag = fc
      .record({
        sources: fc.integer({ min: 1, max: 3 }),
        transforms: fc.integer({ min: 0, max: 5 }),
        sinks: fc.integer({ min: 1, max: 3 }),
      })
      .chain(({ sources, transforms, sinks }) => {
        const inputsFor = (available: number) =>
          fc.uniqueArray(fc.integer({ min: 0, max: available - 1 }), {
            minLength: 1,
            maxLength: Math.min(3, available),
          });
        const transformInputs = Array.from({ length: transforms }, (_, i) => inputsFor(sources + i));
        const sinkInputs = Array.from({ length: sinks }, () => inputsFor(sources + transforms));
        return fc.record({
          sources: fc.constant(sources),
          counts: fc.array(fc.integer({ min: 0, max: 300 }), { minLength: sources, maxLength: sources }),
          transformInputs: fc.tuple(...transformInputs),
          sinkInputs: fc.tuple(...sinkInputs),
          batch: fc.integer({ min: 1, max: 64 }),
          credit: fc.integer({ min: 1, max: 4 }),
        });
      });
    await fc.assert(
      fc.asyncProperty(dag, async ({ sources, counts, transformInputs, sinkInputs, batch, credit }) => {
        collected.clear();
        const names: string[] = [];
        const stages = [];
        // paths[n][s]: number of distinct paths from source s to node n.
        const paths: number[][] = [];
        for (let s = 0; s < sources; s++) {
          names.push(`s${s}`);
          stages.push(stage({ id: `s${s}`, def: countingSource, options: { count: counts[s], batch } }));
          paths.push(Array.from({ length: sources }, (_, k) => (k === s ? 1 : 0)));
        }
        const sumPaths = (inputs: number[]) =>
          Array.from({ length: sources }, (_, k) => inputs.reduce((n, i) => n + (paths[i]?.[k] ?? 0), 0));
        (transformInputs as number[][]).forEach((inputs, t) => {
          names.push(`t${t}`);
          stages.push(stage({ id: `t${t}`, def: passThrough, inputs: inputs.map((i) => names[i] as string) }));
          paths.push(sumPaths(inputs));
        });
        const expected = new Map<string, number[]>();
        (sinkInputs as number[][]).forEach((inputs, k) => {
          stages.push(
            stage({
              id: `k${k}`,
              def: collectSink,
              inputs: inputs.map((i) => names[i] as string),
              options: { name: `k${k}` },
            }),
          );
          expected.set(`k${k}`, sumPaths(inputs));
        });
        const result = await runPipeline(pipeline('dag', tempDir(), stages, { maxBatchesInFlight: credit }));
        expect(result.error).toBeUndefined();
        for (const [sink, perSource] of expected) {
          const got = new Map<string, number>();
          for (const id of ids(sink)) got.set(id, (got.get(id) ?? 0) + 1);
          const want = new Map<string, number>();
          perSource.forEach((multiplicity, s) => {
            if (multiplicity === 0) return;
            for (let i = 0; i < (counts[s] ?? 0); i++) want.set(`s${s}-${i}`, multiplicity);
          });
          expect(got).toEqual(want);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('keeps a fast source within its credit of a slow sink', async () => {
    const batch = 10;
    const credit = 3;
    const received: Array<{ sinkHas: number; sourceAt: number }> = [];
    const spec = pipeline(
      'backpressure',
      tempDir(),
      [
        stage({ id: 'src', def: countingSource, options: { count: 600, batch } }),
        stage({ id: 'mid', def: passThrough, inputs: ['src'] }),
        stage({ id: 'out', def: collectSink, inputs: ['mid'], options: { name: 'out', delay_ms: 5 } }),
      ],
      { maxBatchesInFlight: credit },
    );
    const watcher = setInterval(() => {
      const sourceAt = sourceLog.at(-1)?.emitted ?? 0;
      received.push({ sinkHas: ids('out').length, sourceAt });
    }, 2);
    const result = await runPipeline(spec);
    clearInterval(watcher);
    expect(result.ok).toBe(true);
    expect(ids('out')).toHaveLength(600);
    const maxLead = Math.max(...received.map((r) => r.sourceAt - r.sinkHas));
    // Read ahead is bounded by the credit, plus the batch being prepared.
    expect(maxLead).toBeLessThanOrEqual((credit + 1) * batch);
    expect(maxLead).toBeGreaterThan(0);
  });

  it('stops gracefully, checkpoints, and resumes without loss or repetition', async () => {
    const dir = tempDir();
    const build = () =>
      pipeline('resume', dir, [
        stage({ id: 'src', def: countingSource, options: { count: 2000, batch: 10 } }),
        stage({ id: 'out', def: collectSink, inputs: ['src'], options: { name: 'out', delay_ms: 1 } }),
      ]);
    const stop = new AbortController();
    const watcher = setInterval(() => {
      if (ids('out').length >= 300) stop.abort();
    }, 1);
    const first = await runPipeline(build(), { stop: stop.signal });
    clearInterval(watcher);
    expect(first.ok).toBe(true);
    expect(first.stopped).toBe(true);
    const afterFirst = ids('out').length;
    expect(afterFirst).toBeGreaterThanOrEqual(300);
    expect(afterFirst).toBeLessThan(2000);
    const state = await new StateStore(dir, 'resume').load();
    expect(state?.committed?.positions.src).toBe(afterFirst);
    const second = await runPipeline(build());
    expect(second.ok).toBe(true);
    expect(ids('out')).toEqual(Array.from({ length: 2000 }, (_, i) => `src-${i}`));
  });

  it.each([
    [true, 'sources run on while the sink commits'],
    [false, 'its writes of the next snapshot wait for its commit'],
  ])('commits exactly the records before each cut (sink with cut: %s, %s)', async (cut) => {
    const spec = pipeline(
      `cut-${cut}`,
      tempDir(),
      [
        stage({ id: 'src', def: countingSource, options: { count: 10_000, batch: 50 } }),
        stage({
          id: 'out',
          def: committingSink,
          inputs: ['src'],
          options: { name: 'out', commit_ms: 20, write_ms: 1, cut },
        }),
      ],
      { checkpointIntervalMs: 10 },
    );
    const result = await runPipeline(spec);
    expect(result.ok).toBe(true);
    const log = commits.get('out') ?? [];
    expect(log.length).toBeGreaterThan(2);
    for (const entry of log) expect(entry.committed).toBe(entry.position);
    expect(log.at(-1)?.committed).toBe(10_000);
    const duringCommits = log.reduce((sum, e) => sum + e.writtenDuringCommit, 0);
    if (cut) expect(duringCommits).toBeGreaterThan(0);
    else expect(duringCommits).toBe(0);
  });

  it('records a checkpoint alongside phase one of sinks with their own commit record; reruns from theirs', async () => {
    const dir = tempDir();
    const build = (failAt?: number) =>
      pipeline(
        'ledger',
        dir,
        [
          // 300 writes of at least 1 ms each: periodic checkpoints come before the final one even on a busy machine.
          stage({ id: 'src', def: countingSource, options: { count: 3000, batch: 10 } }),
          stage({ id: 'out', def: ledgerSink, inputs: ['src'], options: { name: 'l', fail_commit_at: failAt } }),
        ],
        { checkpointIntervalMs: 10 },
      );
    const first = await runPipeline(build(2));
    expect(first.ok).toBe(false);
    // Recorded before the commit that failed: the ledger, which holds checkpoint 1, decides.
    const state = await new StateStore(dir, 'ledger').load();
    expect(state?.pending?.id).toBe(2);
    expect(ledgers.get('l')?.committedId).toBe(1);
    const second = await runPipeline(build());
    expect(second.ok).toBe(true);
    expect(ledgers.get('l')?.records).toEqual(Array.from({ length: 3000 }, (_, i) => `src-${i}`));
  });

  it('routes records a sink rejects to its dead_letter port, one by one', async () => {
    const spec = pipeline('dlq', tempDir(), [
      stage({ id: 'src', def: countingSource, options: { count: 100 } }),
      stage({ id: 'out', def: collectSink, inputs: ['src'], options: { name: 'out', reject_suffix: '7' } }),
      stage({ id: 'rejects', def: collectSink, inputs: ['out.dead_letter'], options: { name: 'rejects' } }),
    ]);
    const result = await runPipeline(spec);
    expect(result.ok).toBe(true);
    expect(ids('out')).toHaveLength(90);
    const rejects = collected.get('rejects') ?? [];
    expect(rejects).toHaveLength(10);
    expect(rejects[0]).toMatchObject({ stage: 'out', reason: 'rejected by test', origin: { source: 'src', line: 8 } });
    expect(result.stats.rejected).toBe(10);
  });

  it('fails the run, keeps the last checkpoint, and says which stage failed', async () => {
    const dir = tempDir();
    const spec = pipeline('failing', dir, [
      stage({ id: 'src', def: countingSource, options: { count: 500, batch: 10 } }),
      stage({
        id: 'out',
        def: collectSink,
        inputs: ['src'],
        options: { name: 'out', fail_on: 'src-250' },
        onError: 'fail',
      }),
    ]);
    const result = await runPipeline(spec);
    expect(result.ok).toBe(false);
    expect(result.error?.message).toMatch(/stage out.*refused batch holding src-250/);
    const state = await new StateStore(dir, 'failing').load();
    const committed = (state?.committed?.positions.src as number | undefined) ?? 0;
    expect(committed).toBeLessThanOrEqual(250);
  });
});

describe('max_in_flight', () => {
  /** A lookup-like transform: every batch answers after a random pause; several may run at once. */
  const slowLookup = defineTransform({
    type: 'test_lookup',
    stability: 'alpha',
    summary: 'answers each batch after a random pause',
    schema: { $id: 'test_lookup', type: 'object' } as const,
    examples: [],
    accepts: ['any'],
    outputs: { default: 'any' },
    concurrent: true,
    create() {
      let running = 0;
      return {
        async process(records: EtlRecord[]) {
          running++;
          lookups.most = Math.max(lookups.most, running);
          await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 4)));
          running--;
          return { default: records };
        },
      };
    },
  });
  const lookups = { most: 0 };

  it('runs batches of a concurrent transform at once, and keeps their order', async () => {
    const spec = pipeline('lookup', tempDir(), [
      stage({ id: 'src', def: countingSource, options: { count: 2000, batch: 20 } }),
      stage({ id: 'look', def: slowLookup, inputs: ['src'], maxInFlight: 4 }),
      stage({ id: 'out', def: collectSink, inputs: ['look'], options: { name: 'lookup' } }),
    ]);
    const result = await runPipeline(spec);
    expect(result.ok).toBe(true);
    expect(ids('lookup')).toEqual(Array.from({ length: 2000 }, (_, i) => `src-${i}`));
    expect(lookups.most).toBeGreaterThan(1);
    expect(lookups.most).toBeLessThanOrEqual(4);
  });
});
