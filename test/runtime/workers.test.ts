/**
 * Stateless stages on worker threads (`workers`): the same records, in the same order per source, with the same
 * dead letters and origins, as on the main thread; a worker that dies is replaced and its batches run again.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { loadPipelinesFromString } from '../../engine/config/load.ts';
import type { Logger } from '../../engine/operator.ts';
import { type EtlRecord, ORIGIN } from '../../engine/record.ts';
import { runPipeline } from '../../engine/runtime/run.ts';
import { collected, collectSink, countingSource, countingTransform } from '../support/operators.ts';
import { pipeline, stage } from '../support/spec.ts';
import { crashOnce, statelessTag, WORKER_OPERATORS } from '../support/worker-operators.ts';

const made: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'etl-workers-'));
  made.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => collected.clear());

const options = { operatorModules: [WORKER_OPERATORS] };

/**
 * What a sink got, per source and path, in order: each record with its origin. Where a sink reads one source through
 * several paths (fan-in) how the paths interleave depends on timing, on the main thread too; along one path the
 * order is the source's. A path is told by the fields its stages added and the stage that dead-lettered a record.
 */
function byPath(records: readonly EtlRecord[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const record of records) {
    const origin = record[ORIGIN];
    const tags = Object.keys(record).filter((k) => /^f\d+$/.test(k));
    const path = `${origin?.source ?? '?'} ${tags.join(',')} ${String(record.stage ?? '')}`;
    const list = out.get(path) ?? [];
    // A dead letter's time is when it was made: the only field two runs may not share.
    const kept = typeof record.stage === 'string' ? { ...record, time: undefined } : record;
    list.push(JSON.stringify({ record: kept, origin }));
    out.set(path, list);
  }
  return out;
}

describe('workers', () => {
  it('gives every sink the records, order per source and path, dead letters and origins of the main thread, for random DAGs', async () => {
    const dag = fc
      .record({
        sources: fc.integer({ min: 1, max: 2 }),
        transforms: fc.integer({ min: 1, max: 4 }),
        sinks: fc.integer({ min: 1, max: 3 }),
      })
      .chain(({ sources, transforms, sinks }) => {
        // An input: a node before this one, and for a transform its default, dead_letter or odd port.
        const input = (available: number) =>
          fc.record({
            node: fc.integer({ min: 0, max: available - 1 }),
            port: fc.constantFrom('', 'dead_letter', 'odd'),
          });
        const inputsFor = (available: number) =>
          fc.uniqueArray(input(available), { minLength: 1, maxLength: 2, selector: (x) => x.node });
        return fc.record({
          counts: fc.array(fc.integer({ min: 0, max: 400 }), { minLength: sources, maxLength: sources }),
          transforms: fc.tuple(
            ...Array.from({ length: transforms }, (_, i) =>
              fc.record({
                inputs: inputsFor(sources + i),
                workers: fc.integer({ min: 1, max: 2 }),
                reject: fc.constantFrom(0, 3, 7),
                split: fc.boolean(),
                throws: fc.boolean(),
              }),
            ),
          ),
          sinks: fc.tuple(...Array.from({ length: sinks }, () => inputsFor(sources + transforms))),
          batch: fc.integer({ min: 1, max: 64 }),
          credit: fc.integer({ min: 1, max: 4 }),
        });
      });
    await fc.assert(
      fc.asyncProperty(dag, async ({ counts, transforms, sinks, batch, credit }) => {
        const run = async (useWorkers: boolean) => {
          collected.clear();
          const names: string[] = counts.map((_, s) => `s${s}`);
          const ref = (x: { node: number; port: string }) => {
            const name = names[x.node] as string;
            return name.startsWith('t') && x.port !== '' ? `${name}.${x.port}` : name;
          };
          const stages = counts.map((count, s) =>
            stage({ id: `s${s}`, def: countingSource, options: { count, batch } }),
          );
          transforms.forEach((t, i) => {
            names.push(`t${i}`);
            stages.push(
              stage({
                id: `t${i}`,
                def: statelessTag,
                inputs: t.inputs.map(ref),
                options: {
                  field: `f${i}`,
                  reject_every: t.reject,
                  split: t.split,
                  ...(t.throws ? { throw_on: 's0-13' } : {}),
                },
                workers: useWorkers ? t.workers : 1,
              }),
            );
          });
          sinks.forEach((inputs, k) => {
            stages.push(stage({ id: `k${k}`, def: collectSink, inputs: inputs.map(ref), options: { name: `k${k}` } }));
          });
          const result = await runPipeline(pipeline('dag', tempDir(), stages, { maxBatchesInFlight: credit }), options);
          expect(result.error).toBeUndefined();
          return new Map(sinks.map((_, k) => [`k${k}`, byPath(collected.get(`k${k}`) ?? [])]));
        };
        const main = await run(false);
        const threaded = await run(true);
        expect(threaded).toEqual(main);
      }),
      { numRuns: 6 },
    );
  }, 120_000);

  it('parses, locates and reads agents on 2 workers exactly as on the main thread, dead letters included', async () => {
    const dir = tempDir();
    const lines: string[] = [];
    for (let i = 0; i < 5000; i++) {
      const ip = i % 10 === 0 ? `2a00:1450:4001:${(i % 97).toString(16)}::1` : `8.8.${i % 256}.${(i * 7) % 256}`;
      const agent =
        i % 3 === 0
          ? 'curl/8.5.0'
          : `Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/${100 + (i % 30)}.0 Safari/537.36`;
      lines.push(
        i % 997 === 5
          ? `not a log line ${i}`
          : `${ip} - - [05/Dec/2026:10:00:00 +0000] "GET /p/${i}?q=${i % 13} HTTP/1.1" 200 ${i} "-" "${agent}"`,
      );
    }
    writeFileSync(join(dir, 'access.log'), `${lines.join('\n')}\n\n`);
    const outputs = async (workers: number) => {
      const yaml = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: w${workers} }
spec:
  settings: { data_dir: ${JSON.stringify(join(dir, `.etl${workers}`))}, batch_max_records: 300 }
  sources:
    logs: { type: file, paths: [${JSON.stringify(join(dir, 'access.log'))}] }
  operators:
    parsed: { type: parse, inputs: [logs], format: auto, workers: ${workers} }
    located: { type: geoip, inputs: [parsed], workers: ${workers} }
    agents: { type: user_agent, inputs: [located], workers: ${workers} }
  sinks:
    out: { type: file, inputs: [agents], path: ${JSON.stringify(join(dir, `out${workers}.jsonl`))} }
    bad: { type: file, inputs: [parsed.dead_letter], path: ${JSON.stringify(join(dir, `bad${workers}.jsonl`))} }
`;
      const { pipelines, diagnostics } = await loadPipelinesFromString(yaml, join(dir, 'p.yaml'));
      expect(diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
      const result = await runPipeline(pipelines[0] as NonNullable<(typeof pipelines)[0]>, { cwd: dir });
      expect(result.error).toBeUndefined();
      const read = (name: string) =>
        readFileSync(join(dir, name), 'utf8')
          .trim()
          .split('\n')
          .map((l) => ({ ...(JSON.parse(l) as Record<string, unknown>), time: undefined }));
      return { out: read(`out${workers}.jsonl`), bad: read(`bad${workers}.jsonl`) };
    };
    const one = await outputs(1);
    const two = await outputs(2);
    expect(one.out).toHaveLength(5000 - 6);
    expect(one.bad).toHaveLength(7);
    expect(one.bad[0]).toMatchObject({ stage: 'parsed', origin: { file: join(dir, 'access.log'), line: 6 } });
    expect(two).toEqual(one);
  }, 60_000);

  it('applies the on_error of a stage that throws inside a chain on the main thread, as without workers', async () => {
    const run = async (workers: number) => {
      collected.clear();
      const spec = pipeline(`throws${workers}`, tempDir(), [
        stage({ id: 'src', def: countingSource, options: { count: 1000, batch: 50 } }),
        stage({ id: 'a', def: statelessTag, inputs: ['src'], options: { field: 'f0', reject_every: 7 }, workers }),
        stage({ id: 'b', def: statelessTag, inputs: ['a'], options: { field: 'f1', throw_on: 'src-421' }, workers }),
        stage({ id: 'out', def: collectSink, inputs: ['b'], options: { name: 'out' } }),
        stage({ id: 'bad', def: collectSink, inputs: ['a.dead_letter', 'b.dead_letter'], options: { name: 'bad' } }),
      ]);
      const result = await runPipeline(spec, options);
      expect(result.error).toBeUndefined();
      const letters = (collected.get('bad') ?? []).map((r) => ({ ...r, time: undefined, origin: r[ORIGIN] }));
      return { out: byPath(collected.get('out') ?? []), letters: byPath(letters), errors: result.stats.errors };
    };
    const main = await run(1);
    expect(main.errors).toBe(1);
    expect([...main.letters.values()].flat().filter((l) => l.includes('a batch holding src-421'))).toHaveLength(50 - 7);
    expect(await run(2)).toEqual(main);
  }, 30_000);

  it('replaces a worker that dies and runs its batches again: nothing lost, nothing repeated, order kept', async () => {
    const dir = tempDir();
    const errors: string[] = [];
    const logger = (): Logger => ({
      debug: () => {},
      info: () => {},
      warn: () => {},
      error: (message) => errors.push(message),
    });
    const spec = pipeline('crash', dir, [
      stage({ id: 'src', def: countingSource, options: { count: 3000, batch: 100 } }),
      stage({ id: 'tag', def: statelessTag, inputs: ['src'], options: { field: 'tag' }, workers: 2 }),
      stage({
        id: 'die',
        def: crashOnce,
        inputs: ['tag'],
        options: { crash_at: 'src-1234', marker: join(dir, 'crashed') },
        workers: 2,
      }),
      stage({ id: 'out', def: collectSink, inputs: ['die'], options: { name: 'out' } }),
    ]);
    const result = await runPipeline(spec, { ...options, logger });
    expect(result.error).toBeUndefined();
    expect((collected.get('out') ?? []).map((r) => r.id)).toEqual(Array.from({ length: 3000 }, (_, i) => `src-${i}`));
    expect(errors.some((m) => /a worker thread died .*replaced/.test(m))).toBe(true);
  }, 30_000);

  it('fails the run at open when a stage cannot be made in its workers, naming it, without replacing them', async () => {
    const errors: string[] = [];
    const logger = (): Logger => ({ debug: () => {}, info: () => {}, warn: () => {}, error: (m) => errors.push(m) });
    const spec = pipeline('unmade', tempDir(), [
      stage({ id: 'src', def: countingSource, options: { count: 10 } }),
      stage({ id: 'tag', def: { ...statelessTag, type: 'test_missing' }, inputs: ['src'], options: {}, workers: 2 }),
      stage({ id: 'out', def: collectSink, inputs: ['tag'], options: { name: 'out' } }),
    ]);
    const result = await runPipeline(spec, { ...options, logger });
    expect(result.ok).toBe(false);
    expect(result.error?.message).toMatch(/stage tag \(open\): no transform of type test_missing is registered/);
    expect(errors.some((m) => m.includes('worker thread died'))).toBe(false);
  }, 30_000);

  it('refuses a stage that keeps state, in a pipeline built without the loader', async () => {
    const spec = pipeline('stateful', tempDir(), [
      stage({ id: 'src', def: countingSource, options: { count: 10 } }),
      stage({ id: 'count', def: countingTransform, inputs: ['src'], options: { keys: 3 }, workers: 2 }),
      stage({ id: 'out', def: collectSink, inputs: ['count'], options: { name: 'out' } }),
    ]);
    await expect(runPipeline(spec)).rejects.toThrow(
      'stage count: the `test_counting` transform is not stateless and cannot run on worker threads',
    );
  });
});
