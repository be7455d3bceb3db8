/**
 * Partitioned positions through the runtime (engine/operator.ts): a source is handed the one sink downstream that
 * stores them as `ctx.partitions`, its claims reach that sink, the sink's commit finds the claimed epochs in the
 * snapshot; with no such sink the source gets none, with two it is refused at the first claim.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  defineSink,
  defineSource,
  type PartitionClaim,
  type PartitionStore,
  partitionEntries,
  type Snapshot,
} from '../../engine/operator.ts';
import { runPipeline } from '../../engine/runtime/run.ts';
import { pipeline, stage } from '../support/spec.ts';

let handed: PartitionStore | undefined | 'unset' = 'unset';
let claimed: PartitionClaim[] | Error | undefined;

/** Claims two partitions when given a store, then emits one batch with their positions. */
const claimingSource = defineSource({
  type: 'test_claiming',
  stability: 'alpha',
  summary: 'claims partitions',
  schema: { $id: 'test_claiming', type: 'object' } as const,
  examples: [],
  outputs: { default: 'any' },
  create(_options, ctx) {
    handed = ctx.partitions;
    return {
      async run(out) {
        const store = ctx.partitions;
        if (!store) {
          await out.emit([{ n: 1 }], { partitions: {} });
          return;
        }
        try {
          claimed = await store.claim(['p/0', 'p/1']);
        } catch (error) {
          claimed = error as Error;
          throw error;
        }
        const partitions = Object.fromEntries(
          claimed.map((c) => [c.key, { epoch: c.epoch, position: String(Number(c.position ?? 0) + 1) }]),
        );
        await out.emit([{ n: 1 }], { partitions });
      },
    };
  },
});

const commits: Array<{ sink: string; entries: ReturnType<typeof partitionEntries> }> = [];

/** A committing sink that stores partition positions (epoch 4 for every claim, stored position "9"). */
const storingSink = defineSink({
  type: 'test_storing',
  stability: 'alpha',
  summary: 'stores partition positions',
  schema: { $id: 'test_storing', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  create: (_options, ctx) => ({
    write() {},
    async commit(snapshot: Snapshot) {
      commits.push({ sink: ctx.id, entries: partitionEntries(snapshot.positions) });
    },
    async claimPartitions(keys: readonly string[]) {
      return keys.map((key) => ({ key, epoch: 4, position: '9' }));
    },
  }),
});

const plainSink = defineSink({
  type: 'test_plain',
  stability: 'alpha',
  summary: 'stores nothing of partitions',
  schema: { $id: 'test_plain', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  create: () => ({ write() {} }),
});

function run(sinks: Array<{ id: string; def: typeof storingSink | typeof plainSink }>) {
  handed = 'unset';
  claimed = undefined;
  commits.length = 0;
  const spec = pipeline('partitioned', mkdtempSync(join(tmpdir(), 'etl-partition-store-')), [
    stage({ id: 'queue', def: claimingSource, options: {} }),
    ...sinks.map((s) => stage({ id: s.id, def: s.def, inputs: ['queue'], options: {} })),
  ]);
  return runPipeline(spec, {});
}

describe('partitioned positions through the runtime', () => {
  it('hands the source the one sink that stores them; its commit gets the claimed epochs', async () => {
    const result = await run([
      { id: 'store', def: storingSink },
      { id: 'side', def: plainSink },
    ]);
    expect(result.ok, result.error?.message).toBe(true);
    expect(claimed).toEqual([
      { key: 'p/0', epoch: 4, position: '9' },
      { key: 'p/1', epoch: 4, position: '9' },
    ]);
    expect(commits.at(-1)).toEqual({
      sink: 'store',
      entries: [
        { key: 'p/0', epoch: 4, position: '10' },
        { key: 'p/1', epoch: 4, position: '10' },
      ],
    });
  });

  it('hands none when no sink downstream stores them', async () => {
    const result = await run([{ id: 'side', def: plainSink }]);
    expect(result.ok, result.error?.message).toBe(true);
    expect(handed).toBeUndefined();
  });

  it('refuses two sinks that would each store them, naming both', async () => {
    const result = await run([
      { id: 'one', def: storingSink },
      { id: 'two', def: storingSink },
    ]);
    expect(result.ok).toBe(false);
    expect((claimed as Error).message).toMatch(/reaches 2 sinks that store partition positions \(one, two\)/);
  });
});
