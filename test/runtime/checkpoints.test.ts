/**
 * The checkpoint coordinator on its own, with real credit gates and sinks that record what they see: the
 * invariants that make checkpoints exactly once, whatever the sinks can do.
 */
import { describe, expect, it, vi } from 'vitest';
import type { Sink, Snapshot } from '../../engine/operator.ts';
import { deadLetter } from '../../engine/record.ts';
import { type CheckpointHost, Checkpoints, type CommittingSink } from '../../engine/runtime/checkpoints.ts';
import { CreditGate } from '../../engine/runtime/gate.ts';
import type { CheckpointRecord } from '../../engine/state/store.ts';

interface Saved {
  committed?: CheckpointRecord | undefined;
  pending?: CheckpointRecord;
}

/** A host over one gate; `position` is what the source has sent, `holds` the sinks held and when released. */
function host(sinks: CommittingSink[]) {
  const gate = new CreditGate(4);
  const saves: Saved[] = [];
  const held = new Map<string, Promise<void>>();
  let failure: unknown;
  const state = { position: 0 };
  const h: CheckpointHost = {
    gates: [gate],
    sinks,
    positions: () => ({ src: state.position }),
    snapshotState: async () => ({ transforms: {}, keyed: Promise.resolve(undefined) }),
    transforms: [],
    stageTypes: () => ({ src: 'source:test' }),
    fingerprints: {},
    hold: (id, release) => {
      held.set(id, release);
    },
    save: async (s) => {
      saves.push(structuredClone(s));
    },
    guard: async (_id, fn) => fn(),
    deadLetter: (sinkId, record, reason) => deadLetter(record, sinkId, reason),
    failed: () => failure !== undefined,
    fail: (error) => {
      failure = error;
    },
    abort: new AbortController().signal,
  };
  return { h, gate, saves, held, state, failure: () => failure };
}

/** A sink that logs every call, with the position of the cut it was given. */
function loggingSink(log: string[], name: string, options: { cut: boolean; own?: boolean }): Sink {
  const sink: Sink = {
    write() {},
    async prepareCommit(snapshot: Snapshot) {
      log.push(`${name} prepare ${snapshot.id}`);
      return { sink: name, id: snapshot.id };
    },
    async commit(snapshot: Snapshot) {
      log.push(`${name} commit ${snapshot.id}`);
    },
  };
  if (options.cut) sink.cut = (snapshot) => log.push(`${name} cut ${snapshot.id}`);
  if (options.own) sink.committedCheckpoint = async () => undefined;
  return sink;
}

describe('checkpoints', () => {
  it('drains before the cut: the snapshot is taken only once nothing is in flight', async () => {
    const log: string[] = [];
    const { h, gate, state, saves } = host([{ id: 'a', sink: loggingSink(log, 'a', { cut: true }) }]);
    const checkpoints = new Checkpoints(h, { nextId: 1, intervalMs: 1000 });
    expect(await gate.acquire(new AbortController().signal)).toBe(true);
    state.position = 10;
    checkpoints.markDirty();
    const taken = checkpoints.take();
    await new Promise((resolve) => setImmediate(resolve));
    expect(log).toEqual([]); // waiting for the batch in flight
    // The batch is acknowledged, and the source moves on only after the cut.
    gate.release();
    await taken;
    expect(log).toEqual(['a cut 1', 'a prepare 1', 'a commit 1']);
    expect(saves.at(-1)?.committed).toMatchObject({
      id: 1,
      positions: { src: 10 },
      sinks: { a: { sink: 'a', id: 1 } },
    });
  });

  it('records the checkpoint as pending before any sink commits, and as committed after all did', async () => {
    const log: string[] = [];
    const sinks = [
      { id: 'a', sink: loggingSink(log, 'a', { cut: true }) },
      { id: 'b', sink: loggingSink(log, 'b', { cut: false }) },
    ];
    const { h, saves } = host(sinks);
    const saving = h.save;
    h.save = async (s) => {
      log.push(s.pending ? `save pending ${s.pending.id}` : `save committed ${s.committed?.id}`);
      await saving(s);
    };
    const checkpoints = new Checkpoints(h, { nextId: 5, intervalMs: 1000 });
    const committed: number[] = [];
    checkpoints.onCommitted((record) => committed.push(record.id));
    checkpoints.markDirty();
    await checkpoints.take();
    expect(log).toEqual([
      'a cut 5',
      'a prepare 5',
      'b prepare 5',
      'save pending 5',
      'a commit 5',
      'b commit 5',
      'save committed 5',
    ]);
    expect(saves[0]?.pending?.sinks).toEqual({ a: { sink: 'a', id: 5 }, b: { sink: 'b', id: 5 } });
    expect(committed).toEqual([5]);
    expect(checkpoints.committed).toBe(1);
    expect(checkpoints.lastCommitted?.id).toBe(5);
  });

  it('holds the writes of a sink that cannot cut until it committed, and resumes credit at the cut', async () => {
    const log: string[] = [];
    let releaseCommit: () => void = () => {};
    const slow: Sink = {
      write() {},
      async prepareCommit() {
        return undefined;
      },
      commit: () =>
        new Promise<void>((resolve) => {
          releaseCommit = resolve;
        }),
    };
    const { h, gate, held } = host([
      { id: 'a', sink: loggingSink(log, 'a', { cut: true }) },
      { id: 'slow', sink: slow },
    ]);
    const checkpoints = new Checkpoints(h, { nextId: 1, intervalMs: 1000 });
    checkpoints.markDirty();
    const taken = checkpoints.take();
    while (!held.has('slow')) await new Promise((resolve) => setImmediate(resolve));
    // Credit is back while `slow` commits: the source can send the next snapshot's batches.
    expect(await gate.acquire(AbortSignal.timeout(1000))).toBe(true);
    gate.release();
    let released = false;
    held.get('slow')?.then(() => {
      released = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(released).toBe(false);
    releaseCommit();
    await taken;
    expect(released).toBe(true);
  });

  it('records the checkpoint alongside phase one when every committing sink keeps its own commit record', async () => {
    const log: string[] = [];
    const { h, saves } = host([{ id: 'a', sink: loggingSink(log, 'a', { cut: true, own: true }) }]);
    const checkpoints = new Checkpoints(h, { nextId: 1, intervalMs: 1000 });
    checkpoints.markDirty();
    await checkpoints.take();
    // No sink state in the record: the sink's own storage decides on a rerun.
    expect(saves[0]?.pending?.sinks).toEqual({});
  });

  it('cuts a timed checkpoint when it is due: one interval after the last one started, whatever asked for it', async () => {
    vi.useFakeTimers({ now: 0 });
    try {
      const log: string[] = [];
      const { h } = host([{ id: 'a', sink: loggingSink(log, 'a', { cut: true }) }]);
      const checkpoints = new Checkpoints(h, { nextId: 1, intervalMs: 1000 });
      const cuts: number[] = [];
      checkpoints.onCut(() => cuts.push(Date.now()));
      checkpoints.start();
      await vi.advanceTimersByTimeAsync(100);
      checkpoints.markDirty();
      checkpoints.request();
      await vi.advanceTimersByTimeAsync(0);
      checkpoints.markDirty();
      await vi.advanceTimersByTimeAsync(1500);
      await checkpoints.stop();
      expect(cuts).toEqual([100, 1100]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('takes nothing when nothing happened, and numbers snapshots upwards from the one given', async () => {
    const log: string[] = [];
    const { h, saves } = host([{ id: 'a', sink: loggingSink(log, 'a', { cut: true }) }]);
    const checkpoints = new Checkpoints(h, { nextId: 42, intervalMs: 1000 });
    await checkpoints.take();
    expect(saves).toEqual([]);
    for (let i = 0; i < 3; i++) {
      checkpoints.markDirty();
      await checkpoints.take();
    }
    expect(saves.filter((s) => s.pending).map((s) => s.pending?.id)).toEqual([42, 43, 44]);
  });

  it('says the committed state is current when a checkpoint is due and nothing happened since', async () => {
    const log: string[] = [];
    const { h } = host([{ id: 'a', sink: loggingSink(log, 'a', { cut: true }) }]);
    const checkpoints = new Checkpoints(h, { nextId: 1, intervalMs: 1000 });
    const events: string[] = [];
    checkpoints.onCurrent(() => events.push('current'));
    checkpoints.onCommitted((record, seconds) => events.push(`committed ${record.id} ${seconds >= 0}`));
    await checkpoints.take();
    checkpoints.markDirty();
    await checkpoints.take();
    await checkpoints.take();
    expect(events).toEqual(['current', 'committed 1 true', 'current']);
  });

  it('a failing phase fails the run: the checkpoint stays pending, nothing later is taken', async () => {
    const failing: Sink = {
      write() {},
      cut() {},
      async prepareCommit() {
        return undefined;
      },
      async commit() {
        throw new Error('commit refused');
      },
    };
    const { h, saves, failure } = host([{ id: 'f', sink: failing }]);
    const checkpoints = new Checkpoints(h, { nextId: 1, intervalMs: 1000 });
    checkpoints.markDirty();
    await checkpoints.take();
    expect(String(failure())).toContain('commit refused');
    expect(saves.map((s) => (s.pending ? 'pending' : 'committed'))).toEqual(['pending']);
    checkpoints.markDirty();
    await checkpoints.take();
    expect(saves).toHaveLength(1);
    expect(checkpoints.committed).toBe(0);
  });

  it('coalesces requests made while one is queued, and stops taking them once stopped', async () => {
    const { h, saves } = host([]);
    const checkpoints = new Checkpoints(h, { nextId: 1, intervalMs: 1000 });
    checkpoints.markDirty();
    checkpoints.request();
    checkpoints.request();
    checkpoints.request();
    await checkpoints.stop();
    expect(saves.filter((s) => s.pending)).toHaveLength(1);
    checkpoints.markDirty();
    checkpoints.request();
    await checkpoints.stop();
    expect(saves.filter((s) => s.pending)).toHaveLength(1);
  });
});
