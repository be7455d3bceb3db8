/**
 * When emitted batches become durable. Batches are numbered as sources emit them; a cut (taken while
 * drained) covers every batch numbered so far; when its checkpoint commits, those batches are durable.
 * A source that asks (`Emitted.durable()`) gets a promise settled then; no promise is made otherwise.
 */
import type { Emitted } from '../operator.ts';

interface Waiter {
  readonly batch: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

export class Acknowledgements {
  /** Batches emitted so far. */
  private emittedCount = 0;
  /** Batches covered by a committed checkpoint. */
  private durableUpTo = 0;
  /** Batches emitted before each cut whose checkpoint has not committed yet, by snapshot id. */
  private readonly cuts = new Map<number, number>();
  /** Sources asking; few at a time (pending push requests), so each commit scans them all. */
  private waiting: Waiter[] = [];
  private ended: Error | undefined;

  /** A batch was sent downstream. */
  emitted(): Emitted {
    const batch = ++this.emittedCount;
    let durable: Promise<void> | undefined;
    return {
      sent: true,
      durable: () => {
        durable ??= this.wait(batch);
        return durable;
      },
    };
  }

  /** A batch that was not sent: the source is stopping. */
  notSent(): Emitted {
    return {
      sent: false,
      durable: () => Promise.reject(new Error('the batch was not sent: the source is stopping')),
    };
  }

  cut(snapshotId: number): void {
    this.cuts.set(snapshotId, this.emittedCount);
  }

  committed(snapshotId: number): void {
    const upTo = this.cuts.get(snapshotId);
    if (upTo === undefined) return;
    for (const id of this.cuts.keys()) if (id <= snapshotId) this.cuts.delete(id);
    this.durableUpTo = Math.max(this.durableUpTo, upTo);
    const done = this.waiting.filter((w) => w.batch <= this.durableUpTo);
    if (done.length === 0) return;
    this.waiting = this.waiting.filter((w) => w.batch > this.durableUpTo);
    for (const waiter of done) waiter.resolve();
  }

  /** The run is over: batches not durable by now never will be in this run. */
  end(reason: Error): void {
    this.ended ??= reason;
    for (const waiter of this.waiting.splice(0)) waiter.reject(reason);
  }

  private wait(batch: number): Promise<void> {
    if (batch <= this.durableUpTo) return Promise.resolve();
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => this.waiting.push({ batch, resolve, reject }));
  }
}
