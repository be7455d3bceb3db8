/**
 * Checkpoints of a running pipeline: consistent cuts, committed in two phases.
 *
 * A cut pauses every source's credit and waits until nothing is in flight: every record emitted before it
 * has reached every sink, no record after it has. The snapshot (source positions, transform state) is
 * taken there. Then, per sink that commits:
 * - a sink with `cut` is told where the snapshot ends and takes the next one's writes at once;
 * - any other sink has its input held: writes after the cut wait until it has committed this snapshot.
 * So credit resumes right at the cut and sources run on while sinks commit, whatever the sinks.
 * Phase one (`prepareCommit`) makes each sink's writes durable and returns the state a rerun restores;
 * the checkpoint is recorded as pending; phase two (`commit`) commits in the sinks' own storage; the
 * checkpoint is recorded as committed. A rerun that finds it pending asks the sinks which they committed.
 */
import type { Sink, Snapshot, Transform } from '../operator.ts';
import type { DeadLetter, EtlRecord } from '../record.ts';
import type { KeyedRecord } from '../state/keyed.ts';
import type { CheckpointRecord } from '../state/store.ts';
import type { CreditGate } from './gate.ts';

export interface CommittingSink {
  readonly id: string;
  readonly sink: Sink;
}

/** What the checkpoints need of the run they cut. */
export interface CheckpointHost {
  /** Credit gates of every source. */
  readonly gates: readonly CreditGate[];
  /** Sinks that prepare or commit, in graph order. */
  readonly sinks: readonly CommittingSink[];
  /** Resume positions of the sources (read at the cut, while drained). */
  positions(): Record<string, unknown>;
  /**
   * Operator state at the cut, taken while drained: each stateful transform's `snapshot` by stage id, and
   * the keyed state, whose writing goes on after the pipeline resumes (`keyed` settles once it is durable).
   */
  snapshotState(
    snapshot: Snapshot,
  ): Promise<{ transforms: Record<string, unknown>; keyed: Promise<KeyedRecord | undefined> }>;
  /** Transforms with state outside the process (two-phase hooks), in graph order. */
  readonly transforms: readonly { readonly id: string; readonly transform: Transform }[];
  /** `kind:type` of the stages the checkpoint holds state for, given the transforms with state. */
  stageTypes(transforms: Record<string, unknown>): Record<string, string>;
  /** Every stage's fingerprint (state/fit.ts), recorded with each checkpoint. */
  readonly fingerprints: Record<string, string>;
  /** Holds a sink's writes back until `release` settles. */
  hold(sinkId: string, release: Promise<void>): void;
  save(state: { committed?: CheckpointRecord | undefined; pending?: CheckpointRecord }): Promise<void>;
  /** A dead letter of `record`, refused by sink `sinkId` for `reason`. */
  deadLetter(sinkId: string, record: EtlRecord, reason: string): DeadLetter;
  /** Runs a sink's phase; its errors come back naming the stage. */
  guard<T>(sinkId: string, fn: () => T | Promise<T>): Promise<T>;
  /** Set once the run has failed: no checkpoint is taken any more. */
  failed(): boolean;
  fail(error: unknown): void;
  /** Aborted when the run must stop now: a drain under way is given up. */
  readonly abort: AbortSignal;
  /** A sink's part of a committed checkpoint (its `prepareCommit` and `commit`) took `seconds`. */
  sinkCommitted?(sinkId: string, seconds: number): void;
}

export interface CheckpointOptions {
  /** The checkpoint the run resumed from. */
  readonly lastCommitted?: CheckpointRecord | undefined;
  /** Id of the next snapshot: one more than any id recorded before. */
  readonly nextId: number;
  /** Time between checkpoints, counted from the last one whatever asked for it. */
  readonly intervalMs: number;
  /** Clock, for tests. */
  readonly now?: () => number;
}

export class Checkpoints {
  private readonly host: CheckpointHost;
  private readonly intervalMs: number;
  private readonly now: () => number;
  private nextId: number;
  private last: CheckpointRecord | undefined;
  /** Records were emitted or written since the last cut. */
  private dirty = false;
  private chain: Promise<void> = Promise.resolve();
  /** A checkpoint is chained and has not started yet. */
  private queued = false;
  private soon: NodeJS.Timeout | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** `start` was called: each checkpoint arms the timer for the next one. */
  private timed = false;
  private lastAt: number;
  private stopped = false;
  private committedCount = 0;
  private readonly listeners: Array<(record: CheckpointRecord, seconds: number) => void> = [];
  private readonly cutListeners: Array<(snapshot: Snapshot) => void> = [];
  private readonly currentListeners: Array<() => void> = [];

  constructor(host: CheckpointHost, options: CheckpointOptions) {
    this.host = host;
    this.intervalMs = options.intervalMs;
    this.now = options.now ?? Date.now;
    this.nextId = options.nextId;
    this.last = options.lastCommitted;
    this.lastAt = this.now();
  }

  /** The id the next cut will have: the snapshot records being processed now belong to. */
  get nextSnapshotId(): number {
    return this.nextId;
  }

  /** Checkpoints committed by this run. */
  get committed(): number {
    return this.committedCount;
  }

  /** The last committed checkpoint, of this run or the one it resumed from. */
  get lastCommitted(): CheckpointRecord | undefined {
    return this.last;
  }

  /** Something happened that the next checkpoint must cover. */
  markDirty(): void {
    this.dirty = true;
  }

  /** Called with each checkpoint once it is committed, and how long it took from its start. */
  onCommitted(listener: (record: CheckpointRecord, seconds: number) => void): void {
    this.listeners.push(listener);
  }

  /**
   * Called when a checkpoint is due and nothing happened since the last one: the committed state is still
   * current (an idle pipeline is not behind).
   */
  onCurrent(listener: () => void): void {
    this.currentListeners.push(listener);
  }

  /** Called at each cut, while the pipeline is drained, with the snapshot taken. */
  onCut(listener: (snapshot: Snapshot) => void): void {
    this.cutListeners.push(listener);
  }

  /** Takes a checkpoint every interval from now on. */
  start(): void {
    this.timed = true;
    this.arm();
  }

  /**
   * Wakes when the next checkpoint is due, not on a poll: a poll every quarter interval started checkpoints up to
   * that late, which a row waits for (a quarter of 0.25 s is 62 ms).
   */
  private arm(): void {
    if (this.stopped || !this.timed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        // Due: the checkpoint re-arms when it starts. Not due: one asked for since moved the time.
        if (this.now() - this.lastAt >= this.intervalMs) this.request();
        else this.arm();
      },
      Math.max(0, this.lastAt + this.intervalMs - this.now()),
    );
    this.timer.unref();
  }

  /** Asks for a checkpoint now, or in `delayMs`; requests made meanwhile are served by the same one. */
  request(delayMs?: number): void {
    if (this.stopped) return;
    if (delayMs === undefined) {
      this.enqueue();
      return;
    }
    if (this.soon) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      this.enqueue();
    }, delayMs);
  }

  /** No more checkpoints on the timer or on request; resolves once the one under way is done. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.soon) clearTimeout(this.soon);
    await this.chain;
  }

  /** A checkpoint now, after the ones already chained (the final one of a run). */
  take(): Promise<void> {
    this.chain = this.chain.then(() => this.checkpoint());
    return this.chain;
  }

  private enqueue(): void {
    if (this.queued) return;
    this.queued = true;
    this.chain = this.chain.then(() => this.checkpoint());
  }

  private async checkpoint(): Promise<void> {
    this.queued = false;
    this.lastAt = this.now();
    this.arm();
    const startedAt = performance.now();
    const host = this.host;
    if (host.failed()) return;
    if (!this.dirty) {
      for (const listener of this.currentListeners) listener();
      return;
    }
    const gates = host.gates;
    for (const gate of gates) gate.pause();
    let resumed = false;
    const resume = () => {
      if (resumed) return;
      resumed = true;
      for (const gate of gates) gate.resume();
    };
    const releases: Array<() => void> = [];
    try {
      await Promise.race([Promise.all(gates.map((g) => g.idle())), aborted(host.abort)]);
      if (host.failed()) return;
      this.dirty = false;
      const snapshot: Snapshot = { id: this.nextId++, positions: host.positions() };
      for (const listener of this.cutListeners) listener(snapshot);
      const { transforms, keyed } = await host.snapshotState(snapshot);
      const committing = host.sinks.filter((s) => s.sink.prepareCommit || s.sink.commit);
      const held = new Map<string, () => void>();
      for (const { id, sink } of committing) {
        if (sink.cut) {
          sink.cut(snapshot);
        } else {
          const release = new Promise<void>((resolve) => held.set(id, resolve));
          releases.push(held.get(id) as () => void);
          host.hold(id, release);
        }
      }
      resume();

      const late: Record<string, DeadLetter[]> = {};
      /** Seconds each sink spent in its two phases. */
      const spent = new Map<string, number>();
      const timed = async <T>(id: string, fn: () => T | Promise<T>): Promise<T> => {
        const t0 = performance.now();
        try {
          return await host.guard(id, fn);
        } finally {
          spent.set(id, (spent.get(id) ?? 0) + (performance.now() - t0) / 1000);
        }
      };
      const prepare = async (): Promise<Record<string, unknown>> => {
        for (const { id, transform } of host.transforms) {
          if (transform.prepareCommit) await host.guard(id, () => transform.prepareCommit?.(snapshot));
        }
        const states: Record<string, unknown> = {};
        for (const { id, sink } of committing) {
          if (!sink.prepareCommit) continue;
          const ctx = {
            deadLetter: (record: EtlRecord, reason: string) => {
              late[id] ??= [];
              late[id].push(host.deadLetter(id, record, reason));
            },
          };
          const state = await timed(id, () => sink.prepareCommit?.(snapshot, ctx));
          if (state !== undefined) states[id] = state;
        }
        return states;
      };
      const keyedRecord = await keyed;
      const record = (sinks: Record<string, unknown>): CheckpointRecord => ({
        id: snapshot.id,
        time: new Date(this.now()).toISOString(),
        positions: snapshot.positions as Record<string, unknown>,
        sinks,
        transforms,
        stages: host.stageTypes(transforms),
        fingerprints: host.fingerprints,
        ...(keyedRecord ? { keyed: keyedRecord } : {}),
      });
      let pending: CheckpointRecord;
      if (committing.every((s) => s.sink.committedCheckpoint)) {
        // Every committing sink keeps its own record of what it committed, which decides on a rerun whether
        // this checkpoint counts: recording it need not wait for their phase one, it runs alongside; late
        // dead letters, known only once phase one is done, are recorded again with them.
        pending = record({});
        await Promise.all([prepare(), host.save({ committed: this.last, pending })]);
        if (Object.keys(late).length > 0) {
          pending = { ...pending, late };
          await host.save({ committed: this.last, pending });
        }
      } else {
        pending = { ...record(await prepare()), ...(Object.keys(late).length > 0 ? { late } : {}) };
        await host.save({ committed: this.last, pending });
      }
      for (const { id, transform } of host.transforms) {
        if (transform.commit) await host.guard(id, () => transform.commit?.(snapshot));
      }
      for (const { id, sink } of committing) {
        if (sink.commit) await timed(id, () => sink.commit?.(snapshot));
        held.get(id)?.();
      }
      this.last = pending;
      await host.save({ committed: pending });
      this.committedCount++;
      for (const [id, seconds] of spent) host.sinkCommitted?.(id, seconds);
      const seconds = (performance.now() - startedAt) / 1000;
      for (const listener of this.listeners) listener(pending, seconds);
    } catch (error) {
      host.fail(error);
    } finally {
      for (const release of releases) release();
      resume();
    }
  }
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
