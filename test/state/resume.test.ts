/**
 * Where a run resumes from when the state directory and the sinks' own records tell different stories
 * (state/resume.ts): the state decides unless the sinks are ahead of it; then the sinks' positions are used
 * only when they all agree and nothing else kept state in the directory.
 */
import { describe, expect, it } from 'vitest';
import type { CommittedCheckpoint } from '../../engine/operator.ts';
import { decideResume, type ResumeInputs } from '../../engine/state/resume.ts';
import type { CheckpointRecord, PipelineState } from '../../engine/state/store.ts';

const checkpoint = (id: number, offset = id * 100): CheckpointRecord => ({
  id,
  time: '2026-12-05T00:00:00.000Z',
  positions: { logs: { offset } },
  sinks: {},
  transforms: {},
});
const own = (id: number, offset = id * 100): CommittedCheckpoint => ({ id, positions: { logs: { offset } } });
const state = (committed?: number, pending?: number): PipelineState => ({
  version: 1,
  pipeline: 'p',
  ...(committed ? { committed: checkpoint(committed) } : {}),
  ...(pending ? { pending: checkpoint(pending) } : {}),
});
const inputs = (patch: Partial<ResumeInputs>): ResumeInputs => ({
  pipeline: 'p',
  state: undefined,
  sinkRecords: [],
  stateOnlyHere: [],
  forget: [],
  reset: false,
  ...patch,
});

describe('decideResume', () => {
  it('starts from nothing on a first run', () => {
    const d = decideResume(inputs({ sinkRecords: [{ sink: 'pg', committed: undefined }], stateOnlyHere: ['out'] }));
    expect(d).toEqual({ resumeFrom: undefined, save: false, lastId: 0, warnings: [] });
  });

  it('resumes from the state while no sink is ahead of it', () => {
    const d = decideResume(inputs({ state: state(4), sinkRecords: [{ sink: 'pg', committed: own(4) }] }));
    expect(d.resumeFrom?.id).toBe(4);
    expect(d.save).toBe(false);
    expect(d.warnings).toEqual([]);
  });

  it('counts a pending checkpoint only when every sink with its own record committed it', () => {
    const both = [
      { sink: 'a', committed: own(5) },
      { sink: 'b', committed: own(5) },
    ];
    expect(decideResume(inputs({ state: state(4, 5), sinkRecords: both })).resumeFrom?.id).toBe(5);
    const split = decideResume(
      inputs({
        state: state(4, 5),
        sinkRecords: [
          { sink: 'a', committed: own(5) },
          { sink: 'b', committed: own(4) },
        ],
      }),
    );
    expect(split.resumeFrom?.id).toBe(4);
    expect(split.save).toBe(true);
    expect(split.warnings[0]).toContain('a at 5, b at 4');
  });

  it('resumes from the positions the sinks committed when the state directory is gone', () => {
    const d = decideResume(
      inputs({
        sinkRecords: [
          { sink: 'a', committed: own(7, 1234) },
          { sink: 'b', committed: own(7, 1234) },
        ],
      }),
    );
    expect(d.resumeFrom).toMatchObject({ id: 7, positions: { logs: { offset: 1234 } }, sinks: {}, transforms: {} });
    expect(d.save).toBe(true);
    expect(d.lastId).toBe(7);
    expect(d.warnings[0]).toMatch(/holds no checkpoint .* resuming from checkpoint 7/);
  });

  it('treats a state directory older than the sinks as lost', () => {
    const d = decideResume(inputs({ state: state(3), sinkRecords: [{ sink: 'pg', committed: own(9) }] }));
    expect(d.resumeFrom?.id).toBe(9);
    expect(d.warnings[0]).toContain("the state directory's last checkpoint is 3, older than the data");
  });

  it('refuses when the sinks disagree, or when some state lived only in the directory', () => {
    const disagree = inputs({
      sinkRecords: [
        { sink: 'a', committed: own(7) },
        { sink: 'b', committed: undefined },
      ],
    });
    expect(() => decideResume(disagree)).toThrow(/disagree \(a at checkpoint 7, b at none\).*--reset/);
    const onlyHere = inputs({ sinkRecords: [{ sink: 'pg', committed: own(7) }], stateOnlyHere: ['rejects'] });
    expect(() => decideResume(onlyHere)).toThrow(/state of rejects was kept only there.*--forget rejects.*--reset/);
    expect(decideResume({ ...onlyHere, forget: ['rejects'] }).resumeFrom?.id).toBe(7);
  });

  it('starts over with --reset, saying what the sinks already hold, and keeps ids above theirs', () => {
    const d = decideResume(inputs({ reset: true, sinkRecords: [{ sink: 'pg', committed: own(12) }] }));
    expect(d.resumeFrom).toBeUndefined();
    expect(d.lastId).toBe(12);
    expect(d.warnings[0]).toContain('sink pg (checkpoint 12) already holds data');
  });
});
