/**
 * Credit for one source: how many of its batches may be unacknowledged at once. A source acquires a
 * permit before sending a batch; the permit comes back when every sink downstream has acknowledged it.
 * Pausing (for a checkpoint) holds new permits back while batches already out drain.
 */
export class CreditGate {
  private inFlight = 0;
  private paused = false;
  private waiters: Array<() => void> = [];
  private idleWaiters: Array<() => void> = [];
  private readonly capacity: number;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`credit must be a positive integer, got ${capacity}`);
    this.capacity = capacity;
  }

  get outstanding(): number {
    return this.inFlight;
  }

  /** Resolves true with a permit, or false when `signal` aborts first (the caller must then not send). */
  acquire(signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    if (!this.paused && this.inFlight < this.capacity) {
      this.inFlight++;
      return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve) => {
      const onAbort = () => {
        const i = this.waiters.indexOf(grant);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(false);
      };
      const grant = () => {
        signal.removeEventListener('abort', onAbort);
        this.inFlight++;
        resolve(true);
      };
      this.waiters.push(grant);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** A permit now if one is free (not paused, under capacity), else false: for senders that skip rather than wait. */
  tryAcquire(): boolean {
    if (this.paused || this.inFlight >= this.capacity) return false;
    this.inFlight++;
    return true;
  }

  release(): void {
    this.inFlight--;
    if (this.inFlight === 0) {
      const idle = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of idle) resolve();
    }
    this.grantWaiting();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.grantWaiting();
  }

  /** Resolves when no batch of this source is unacknowledged. */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private grantWaiting(): void {
    while (!this.paused && this.inFlight < this.capacity && this.waiters.length > 0) {
      (this.waiters.shift() as () => void)();
    }
  }
}
