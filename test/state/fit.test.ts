/** A checkpoint resumed into a pipeline edited since: what carries over, what is dropped, what is refused. */
import { describe, expect, it } from 'vitest';
import type { PipelineSpec } from '../../engine/config/types.ts';
import { EtlError } from '../../engine/errors.ts';
import { changesSince, fitCheckpoint, stageFingerprints } from '../../engine/state/fit.ts';
import type { CheckpointRecord } from '../../engine/state/store.ts';
import { collectSink, countingSource, countingTransform, passThrough } from '../support/operators.ts';
import { pipeline, stage } from '../support/spec.ts';

const spec = (sourceId: string, sinkId = 'out'): PipelineSpec =>
  pipeline('p', '/tmp/unused', [
    stage({ id: sourceId, def: countingSource, options: { count: 1 } }),
    stage({ id: 'a', def: passThrough, inputs: [sourceId] }),
    stage({ id: sinkId, def: collectSink, inputs: ['a'], options: { name: 'x' } }),
  ]);

const record = (overrides: Partial<CheckpointRecord> = {}): CheckpointRecord => ({
  id: 7,
  time: '2026-12-05T00:00:00Z',
  positions: { logs: 1000 },
  sinks: { out: { bytes: 5 } },
  transforms: {},
  stages: { logs: 'source:test_counter', out: 'sink:test_collect' },
  ...overrides,
});

function refusal(fn: () => unknown): EtlError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(EtlError);
    expect((error as EtlError).code).toBe('ETL_STATE_MISMATCH');
    return error as EtlError;
  }
  throw new Error('expected a refusal');
}

describe('fitting a checkpoint to the pipeline', () => {
  it('takes a checkpoint of the same stages as it is', () => {
    const fitted = fitCheckpoint(record(), spec('logs'));
    expect(fitted).toEqual({ record: record(), notes: [], changed: false });
  });

  it('refuses a renamed source, and says how to go on', () => {
    const error = refusal(() => fitCheckpoint(record(), spec('src')));
    expect(error.message).toBe(
      'checkpoint 7 holds state for source `logs`, which pipeline p no longer has, and source `src` has none. ' +
        'If `src` is `logs` renamed: --rename logs=src; if `logs` is gone for good: --forget logs (`src` then reads ' +
        'from the start); or start pipeline p over with --reset (sinks that append will hold the records twice)',
    );
  });

  it("names as a possible rename only an added stage of the removed one's type", () => {
    // `a` (a stateless pass-through) holds no state and is new to the checkpoint, as a renamed stage would be.
    const stateful = record({
      transforms: { visits: { open: 1 } },
      stages: { logs: 'source:test_counter', visits: 'transform:test_counting', out: 'sink:test_collect' },
    });
    const renamedSpec = pipeline('p', '/tmp/unused', [
      stage({ id: 'logs', def: countingSource, options: { count: 1 } }),
      stage({ id: 'a', def: passThrough, inputs: ['logs'] }),
      stage({ id: 'sessions', def: countingTransform, inputs: ['a'] }),
      stage({ id: 'out', def: collectSink, inputs: ['sessions'], options: { name: 'x' } }),
    ]);
    const error = refusal(() => fitCheckpoint(stateful, renamedSpec));
    expect(error.message).toContain(
      'and transform `sessions` has none. If `sessions` is `visits` renamed: --rename visits=sessions;',
    );
    // A removed stage with no stage of its type added is gone: its state is dropped, with a note.
    const retyped = record({
      transforms: { visits: { open: 1 } },
      stages: { logs: 'source:test_counter', visits: 'transform:sessionize', out: 'sink:test_collect' },
    });
    const fitted = fitCheckpoint(retyped, spec('logs'));
    expect(fitted.record.transforms).toEqual({});
    expect(fitted.notes).toEqual(['transform `visits` is no longer in the pipeline: its checkpoint state is dropped']);
  });

  it('carries the state over with --rename, or drops it with --forget', () => {
    const renamed = fitCheckpoint(record(), spec('src'), { renames: { logs: 'src' } });
    expect(renamed.changed).toBe(true);
    expect(renamed.record.positions).toEqual({ src: 1000 });
    expect(renamed.record.stages).toEqual({ src: 'source:test_counter', out: 'sink:test_collect' });
    expect(renamed.notes).toEqual(['state of `logs` now belongs to `src` (--rename)']);
    const forgotten = fitCheckpoint(record(), spec('src'), { forget: ['logs'] });
    expect(forgotten.record.positions).toEqual({});
  });

  it('refuses a renamed sink, whose state would otherwise be lost', () => {
    const error = refusal(() => fitCheckpoint(record(), spec('logs', 'store')));
    expect(error.message).toContain('--rename out=store');
  });

  it('drops the state of a removed stage and lets an added one start fresh', () => {
    const fitted = fitCheckpoint(record({ positions: { logs: 1000, old: 3 }, stages: undefined }), spec('logs'));
    expect(fitted.record.positions).toEqual({ logs: 1000 });
    expect(fitted.notes).toEqual(['source `old` is no longer in the pipeline: its checkpoint state is dropped']);
    const added = spec('logs');
    const withNewSource = {
      ...added,
      stages: [stage({ id: 'more', def: countingSource, options: { count: 1 } }), ...added.stages],
    };
    expect(fitCheckpoint(record(), withNewSource).changed).toBe(false);
  });

  it('refuses a stage whose type changed, unless it is forgotten', () => {
    const error = refusal(() =>
      fitCheckpoint(record({ stages: { logs: 'source:file', out: 'sink:test_collect' } }), spec('logs')),
    );
    expect(error.message).toContain('`logs` was a `file` source and is a `test_counter` source');
    expect(error.message).toContain('--forget logs');
    const forgotten = fitCheckpoint(
      record({ stages: { logs: 'source:file', out: 'sink:test_collect' } }),
      spec('logs'),
      {
        forget: ['logs'],
      },
    );
    expect(forgotten.record.positions).toEqual({});
  });

  it('refuses a rename onto a stage that has state of its own', () => {
    const both = record({ positions: { logs: 1, src: 2 }, stages: undefined });
    expect(refusal(() => fitCheckpoint(both, spec('src'), { renames: { logs: 'src' } })).message).toContain(
      '--rename logs=src: checkpoint 7 holds state for `src` too',
    );
  });

  it('tells what was edited since a checkpoint: stages added, removed, declared otherwise; nothing for older records', () => {
    const before = spec('logs');
    const taken = record({ fingerprints: stageFingerprints(before) });
    expect(changesSince(taken, before)).toEqual([]);
    expect(changesSince(record(), spec('logs', 'db'))).toEqual([]);
    const edited = pipeline('p', '/tmp/unused', [
      stage({ id: 'logs', def: countingSource, options: { count: 2 } }),
      stage({ id: 'out', def: collectSink, inputs: ['logs'], options: { name: 'x' } }),
    ]);
    expect(changesSince(taken, edited)).toEqual([
      'source `logs` (test_counter) declared otherwise (inputs or options)',
      'sink `out` (test_collect) declared otherwise (inputs or options)',
      '`a` removed',
    ]);
    // Renamed with --rename: what reads the renamed stage is not edited.
    const renamed = fitCheckpoint(taken, spec('src'), { renames: { logs: 'src' } }).record;
    expect(changesSince(renamed, spec('src'), { logs: 'src' })).toEqual([]);
  });
});
