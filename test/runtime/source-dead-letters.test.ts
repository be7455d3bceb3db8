/**
 * `BatchOptions.deadLetters`: a source sends input it could not turn into records (a malformed line in a pushed
 * body) on its `dead_letter` port, in the same delivery as the batch's records, so `durable()` covers both. An
 * unread port counts them as discarded and warns once, as for any stage.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defineSource, type OperatorDefinition } from '../../engine/operator.ts';
import { deadLetter, type EtlRecord } from '../../engine/record.ts';
import { runPipeline } from '../../engine/runtime/run.ts';
import { recordingContext } from '../support/context.ts';
import { collected, collectSink } from '../support/operators.ts';
import { pipeline, stage } from '../support/spec.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-source-dead-letters-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const durable: string[] = [];

/** Emits a record with a dead letter, then a batch of dead letters alone; waits for both to be durable. */
const refusing = defineSource({
  type: 'test_refusing',
  stability: 'alpha',
  summary: 'a source that refuses some of its input',
  schema: { $id: 'test_refusing', type: 'object' } as const,
  examples: [],
  outputs: { default: 'any', dead_letter: 'dead_letter' },
  create: (_options, ctx) => ({
    async run(out) {
      const first = await out.emit([{ message: 'a' } as EtlRecord], undefined, 10, {
        deadLetters: [deadLetter({ message: '{bad' }, ctx.id, 'not valid JSON')],
      });
      const second = await out.emit([], undefined, 5, {
        deadLetters: [deadLetter({ message: '42' }, ctx.id, 'a JSON number')],
      });
      await Promise.all([first.durable(), second.durable()]);
      durable.push('both');
    },
  }),
});

async function run(readDeadLetters: boolean) {
  const logs = recordingContext();
  collected.set('records', []);
  collected.set('rejects', []);
  const stages = [
    stage({ id: 'src', def: refusing as OperatorDefinition }),
    stage({ id: 'out', def: collectSink as OperatorDefinition, inputs: ['src'], options: { name: 'records' } }),
  ];
  if (readDeadLetters) {
    stages.push(
      stage({
        id: 'bad',
        def: collectSink as OperatorDefinition,
        inputs: ['src.dead_letter'],
        options: { name: 'rejects' },
      }),
    );
  }
  const result = await runPipeline(pipeline(`refusing-${readDeadLetters}`, join(dir, '.etl'), stages), {
    logger: () => logs.logger,
  });
  return { result, logs };
}

describe('dead letters sent by a source', () => {
  it('leave on its dead_letter port with the batch, count as rejected, and are durable with it', async () => {
    durable.length = 0;
    const { result } = await run(true);
    expect(result.ok).toBe(true);
    expect(durable).toEqual(['both']);
    expect(collected.get('records')?.map((r) => r.message)).toEqual(['a']);
    expect(collected.get('rejects')?.map((r) => [r.stage, r.reason, r.raw])).toEqual([
      ['src', 'not valid JSON', '{bad'],
      ['src', 'a JSON number', '42'],
    ]);
    expect(result.stats.rejected).toBe(2);
    expect(result.stats.recordsIn).toBe(3);
  });

  it('are counted as discarded, with a warning, when nobody reads the port', async () => {
    durable.length = 0;
    const { result, logs } = await run(false);
    expect(result.ok).toBe(true);
    expect(durable).toEqual(['both']);
    expect(collected.get('records')?.map((r) => r.message)).toEqual(['a']);
    expect(logs.logs.filter((l) => l.message.includes('no stage reads src.dead_letter'))).toHaveLength(1);
  });
});
