/**
 * Record ownership: a stage declaring `changesRecords` changes the records it receives in place, and the runtime
 * hands it copies wherever another stage may hold the same objects (engine/runtime/ownership.ts). Without those
 * copies, the other branch of a fan-out would store what the changing stage wrote.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { buildGraph, consumersByPort } from '../../engine/graph/graph.ts';
import { defineTransform } from '../../engine/operator.ts';
import { type EtlRecord, ORIGIN } from '../../engine/record.ts';
import { copyingEdges } from '../../engine/runtime/ownership.ts';
import { runPipeline } from '../../engine/runtime/run.ts';
import { registry } from '../../operators/all.ts';
import { collected, collectSink, countingSource, passThrough } from '../support/operators.ts';
import { pipeline, stage } from '../support/spec.ts';

const made: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'etl-ownership-'));
  made.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => collected.clear());

/** Stamps every record it receives, in place. */
const stamp = defineTransform({
  type: 'test_stamp',
  stability: 'alpha',
  summary: 'sets `stamped: true` on the records themselves',
  schema: { $id: 'test_stamp', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  outputs: { default: 'any' },
  changesRecords: true,
  create() {
    return {
      process(records: EtlRecord[]) {
        for (const record of records) record.stamped = true;
        return { default: records };
      },
    };
  },
});

/** Emits each record it receives on `default` and on `also`: the same object on two ports. */
const twice = defineTransform({
  type: 'test_twice',
  stability: 'alpha',
  summary: 'passes every record on both of its ports',
  schema: { $id: 'test_twice', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  outputs: { default: 'any', also: 'any' },
  sharesRecords: true,
  create() {
    return { process: (records: EtlRecord[]) => ({ default: records, also: records }) };
  },
});

/** Gives each record a user agent, in new records (it changes nothing it receives). */
const agents = defineTransform({
  type: 'test_agents',
  stability: 'alpha',
  summary: 'gives each record a user agent (new records)',
  schema: { $id: 'test_agents', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  outputs: { default: 'any' },
  create() {
    return {
      process: (records: EtlRecord[]) => ({
        default: records.map((r) => ({ ...r, user_agent: 'Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0' })),
      }),
    };
  },
});

const userAgent = registry.find((def) => def.kind === 'transform' && def.type === 'user_agent');
const count = 250;
const sink = (id: string, input: string) => stage({ id, def: collectSink, inputs: [input], options: { name: id } });

async function run(stages: Parameters<typeof pipeline>[2]): Promise<void> {
  const result = await runPipeline(pipeline('ownership', tempDir(), stages));
  expect(result.ok, result.ok ? '' : String(result.error)).toBe(true);
}

describe('record ownership', () => {
  it('with fan-out, a changing stage on one branch leaves what the other branch stores as it was', async () => {
    await run([
      stage({ id: 'src', def: countingSource, options: { count } }),
      stage({ id: 'stamped', def: stamp, inputs: ['src'] }),
      sink('changed', 'stamped'),
      sink('plain', 'src'),
    ]);
    const plain = collected.get('plain') ?? [];
    const changed = collected.get('changed') ?? [];
    expect(plain).toHaveLength(count);
    expect(changed).toHaveLength(count);
    expect(plain.filter((r) => 'stamped' in r)).toEqual([]);
    expect(changed.every((r) => r.stamped === true)).toBe(true);
    // The copies keep where each record came from.
    expect(changed[7]?.[ORIGIN]).toEqual({ source: 'src', line: 8 });
  });

  it('copies also behind a stage that passes shared records on, and behind one that emits an object twice', async () => {
    await run([
      stage({ id: 'src', def: countingSource, options: { count } }),
      stage({ id: 'pass', def: passThrough, inputs: ['src'] }),
      stage({ id: 'stamped', def: stamp, inputs: ['pass'] }),
      sink('changed', 'stamped'),
      sink('plain', 'src'),
      stage({ id: 'src2', def: countingSource, options: { count } }),
      stage({ id: 'both', def: twice, inputs: ['src2'] }),
      stage({ id: 'stamped2', def: stamp, inputs: ['both'] }),
      sink('changed2', 'stamped2'),
      sink('plain2', 'both.also'),
    ]);
    for (const name of ['plain', 'plain2']) {
      expect(collected.get(name)).toHaveLength(count);
      expect((collected.get(name) ?? []).filter((r) => 'stamped' in r)).toEqual([]);
    }
    for (const name of ['changed', 'changed2']) expect(collected.get(name)?.every((r) => r.stamped)).toBe(true);
  });

  it.each([1, 2])(
    'the enrichment stages too: user_agent (workers: %i) on one branch, the raw records stored on the other',
    async (workers) => {
      if (!userAgent) throw new Error('no user_agent transform');
      await run([
        stage({ id: 'src', def: countingSource, options: { count } }),
        stage({ id: 'with_agents', def: agents, inputs: ['src'] }),
        stage({ id: 'ua', def: userAgent, inputs: ['with_agents'], options: { cache_size: 100 }, workers }),
        sink('enriched', 'ua'),
        sink('raw', 'with_agents'),
      ]);
      expect(collected.get('enriched')?.every((r) => r.ua_browser === 'Firefox')).toBe(true);
      expect(collected.get('raw')).toHaveLength(count);
      expect((collected.get('raw') ?? []).filter((r) => 'ua_browser' in r)).toEqual([]);
    },
  );

  it('copies only where another stage may hold the records', () => {
    const graph = buildGraph([
      stage({ id: 'src', def: countingSource }),
      stage({ id: 'own', def: stamp, inputs: ['src'] }),
      stage({ id: 'after', def: stamp, inputs: ['own'] }),
      sink('out', 'after'),
      stage({ id: 'src2', def: countingSource }),
      stage({ id: 'shared', def: stamp, inputs: ['src2'] }),
      sink('out2', 'src2'),
      stage({ id: 'both', def: twice, inputs: ['src2'] }),
      stage({ id: 'on_workers', def: stamp, inputs: ['both'] }),
      sink('out3', 'both.also'),
    ]);
    const copies = copyingEdges(graph, consumersByPort(graph), (id) => id === 'on_workers');
    expect([...copies].sort()).toEqual(['src2.default->shared']);
  });
});
