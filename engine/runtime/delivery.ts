/**
 * Tracks one source batch through the graph: how many stage inputs still hold records from it. Every
 * hand-off to a consumer retains it; every consumer that is done with its input releases it. At zero,
 * every sink downstream has acknowledged the batch (with fan-out, the slowest consumer decides).
 */
export class Delivery {
  private pending = 0;
  private readonly onSettled: () => void;

  constructor(onSettled: () => void) {
    this.onSettled = onSettled;
  }

  retain(count: number): void {
    this.pending += count;
  }

  release(): void {
    this.pending--;
    if (this.pending === 0) this.onSettled();
    else if (this.pending < 0) throw new Error('delivery released more often than retained');
  }
}
