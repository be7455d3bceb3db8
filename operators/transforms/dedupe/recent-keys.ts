/**
 * Keys, each with the time (performance.now()) until which it holds, about `capacity` of them at most. Two
 * generations of maps: new keys go into the young one; when it holds half the capacity, the old one is
 * dropped whole and the young one takes its place. (An LRU such as lru-cache keeps a list per entry, which the
 * dedupe stage does not need: keys are added once per window and looked up, never refreshed; dropping half the
 * keys at once costs the hot path nothing per key.)
 */
export class RecentKeys {
  private young = new Map<string, number>();
  private old = new Map<string, number>();
  private readonly half: number;

  constructor(capacity: number) {
    this.half = Math.max(1, Math.ceil(capacity / 2));
  }

  /** Whether `key` was added with a time still to come. */
  has(key: string): boolean {
    const until = this.young.get(key) ?? this.old.get(key);
    // The clock is read at each hit: a batch may take long enough for an entry to end while it is read.
    return until !== undefined && performance.now() < until;
  }

  /** Remembers `key` until `until`. */
  add(key: string, until: number): void {
    if (this.young.size >= this.half) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(key, until);
  }

  get size(): number {
    return this.young.size + this.old.size;
  }
}
