/**
 * Source acknowledgements: a source learns when each batch is durable (a push source answers its client
 * then) and which position each committed checkpoint holds (a queue source commits its offsets then).
 * Checked with a source that keeps what it was told, against what the sink really committed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { defineSource, type Emitted } from '../../engine/operator.ts';
import { type EtlRecord, ORIGIN } from '../../engine/record.ts';
import { Acknowledgements } from '../../engine/runtime/acks.ts';
import { runPipeline } from '../../engine/runtime/run.ts';
import { commits, committingSink } from '../support/operators.ts';
import { pipeline, stage } from '../support/spec.ts';

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'etl-acks-'));
  made.push(dir);
  return dir;
};

interface Told {
  /** For each batch: its position, and what the sink had committed when the batch was said durable. */
  durable: Array<{ position: number; committedThen: number }>;
  failed: Array<{ position: number; error: string }>;
  committedPositions: number[];
  notSent: number;
}

const told = new Map<string, Told>();

/** Emits `count` records in batches of 50, asks for every batch's durability and listens to commits. */
const ackingSource = defineSource({
  type: 'test_acking',
  stability: 'alpha',
  summary: 'a source that records its acknowledgements',
  schema: { $id: 'test_acking', type: 'object' } as const,
  examples: [],
  outputs: { default: 'any' },
  create(options: { name: string; count: number; sink: string }, ctx) {
    const log: Told = { durable: [], failed: [], committedPositions: [], notSent: 0 };
    told.set(options.name, log);
    return {
      async run(out) {
        out.onCommitted((position) => log.committedPositions.push(position as number));
        const waits: Promise<void>[] = [];
        for (let next = 0; next < options.count && !out.stopping.aborted; ) {
          const end = Math.min(options.count, next + 50);
          const records: EtlRecord[] = [];
          for (let i = next; i < end; i++) records.push({ id: i, [ORIGIN]: { source: ctx.id } });
          next = end;
          const emitted: Emitted = await out.emit(records, end);
          if (!emitted.sent) {
            log.notSent++;
            await expect(emitted.durable()).rejects.toThrow('not sent');
            continue;
          }
          waits.push(
            emitted.durable().then(
              () => {
                const committed = (commits.get(options.sink) ?? []).at(-1)?.committed ?? 0;
                log.durable.push({ position: end, committedThen: committed });
              },
              (error: unknown) => {
                log.failed.push({ position: end, error: String(error) });
              },
            ),
          );
        }
        // Answers come after the run's last checkpoint, outside the source's run.
        void Promise.all(waits);
      },
    };
  },
});

beforeEach(() => {
  commits.clear();
  told.clear();
});

const build = (name: string, options: { count: number; failCommit?: boolean } = { count: 2000 }) =>
  pipeline(
    name,
    tempDir(),
    [
      stage({ id: 'src', def: ackingSource, options: { name, count: options.count, sink: name } }),
      stage({
        id: 'out',
        def: committingSink,
        inputs: ['src'],
        options: { name, commit_ms: 5, write_ms: 1, cut: true, fail_commit_at: options.failCommit ? 3 : undefined },
      }),
    ],
    { checkpointIntervalMs: 10 },
  );

/** Lets the acknowledgements settled by the last checkpoint reach the source. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('source acknowledgements', () => {
  it('says a batch is durable only once the sink has committed it, and every batch is said so', async () => {
    const result = await runPipeline(build('all'));
    expect(result.ok).toBe(true);
    await settle();
    const log = told.get('all') as Told;
    expect(log.failed).toEqual([]);
    expect(log.durable.map((d) => d.position)).toEqual(Array.from({ length: 40 }, (_, i) => (i + 1) * 50));
    for (const d of log.durable) expect(d.committedThen).toBeGreaterThanOrEqual(d.position);
  });

  it('tells the source each committed position, in order, ending with the last one', async () => {
    await runPipeline(build('positions'));
    const log = told.get('positions') as Told;
    const committed = (commits.get('positions') ?? []).map((c) => c.position);
    expect(log.committedPositions).toEqual(committed);
    expect(log.committedPositions.length).toBeGreaterThan(2);
    expect(log.committedPositions.at(-1)).toBe(2000);
    expect([...log.committedPositions].sort((a, b) => a - b)).toEqual(log.committedPositions);
  });

  it('rejects the batches no committed checkpoint holds when the run fails', async () => {
    const result = await runPipeline(build('failing', { count: 20_000, failCommit: true }));
    expect(result.ok).toBe(false);
    await settle();
    const log = told.get('failing') as Told;
    const lastCommitted = (commits.get('failing') ?? []).at(-1)?.committed ?? 0;
    expect(log.failed.length).toBeGreaterThan(0);
    for (const d of log.durable) expect(d.position).toBeLessThanOrEqual(lastCommitted);
    for (const f of log.failed) expect(f.position).toBeGreaterThan(lastCommitted);
  });
});

describe('acknowledgement bookkeeping', () => {
  it('settles a batch with the first checkpoint whose cut follows it, whatever the order of the asks', async () => {
    const acks = new Acknowledgements();
    const a = acks.emitted();
    acks.cut(1);
    const b = acks.emitted();
    const settled: string[] = [];
    b.durable().then(() => settled.push('b'));
    a.durable().then(() => settled.push('a'));
    acks.cut(2);
    acks.committed(1);
    await settle();
    expect(settled).toEqual(['a']);
    acks.committed(2);
    await settle();
    expect(settled).toEqual(['a', 'b']);
    // Asked after it became durable: at once.
    await expect(a.durable()).resolves.toBeUndefined();
    const c = acks.emitted();
    acks.end(new Error('run over'));
    await expect(c.durable()).rejects.toThrow('run over');
    await expect(acks.notSent().durable()).rejects.toThrow('not sent');
  });
});
