/**
 * Answers by IPv4 address (its 32-bit value, `ipv4Value`), in typed arrays: a two-way set-associative table,
 * each set keeping the address used last and replacing the other. Hand-written because a string-keyed cache
 * (lru-cache, or a plain Map) pays for the address text at every lookup: its hash, then a comparison with the
 * key, a separate object. In the enrichment chain of bench/enrich.ts (50,000 distinct clients), geoip's
 * lru-cache lookups took 0.43 µs each, several times a lookup in a quiet micro-benchmark: misses in the CPU
 * caches, as records stream by. Here a lookup reads one or two key slots and one value, with no text hashed.
 * An address is missed when two others of its set were used since: rarely a busy one.
 */
export class Ipv4Cache<V> {
  /** Address of each slot; two slots (ways) per set, the set picked by a hash of the address. */
  private readonly keys: Int32Array;
  private readonly values: (V | undefined)[];
  /** Per set: the way used last (the other is replaced). */
  private readonly recent: Uint8Array;
  private readonly shift: number;

  /** `size` slots (≥ 1), rounded up to a power of two (at least 2): at most that many addresses are kept. */
  constructor(size: number) {
    const bits = Math.max(1, Math.ceil(Math.log2(size)));
    this.keys = new Int32Array(2 ** bits);
    this.values = new Array<V | undefined>(2 ** bits).fill(undefined);
    this.recent = new Uint8Array(2 ** (bits - 1));
    this.shift = 32 - (bits - 1);
  }

  /** The answer kept for `address` (0 to 2³²−1), or undefined. */
  get(address: number): V | undefined {
    const key = address | 0;
    const set = this.setOf(key);
    const slot = set << 1;
    if (this.keys[slot] === key) {
      const value = this.values[slot];
      if (value !== undefined) {
        this.recent[set] = 0;
        return value;
      }
    }
    if (this.keys[slot + 1] === key) {
      const value = this.values[slot + 1];
      if (value !== undefined) this.recent[set] = 1;
      return value;
    }
    return undefined;
  }

  /** Keeps `value` for `address`: in the way that holds the address, or else the way of its set used less recently. */
  set(address: number, value: V): void {
    const key = address | 0;
    const set = this.setOf(key);
    const slot = set << 1;
    const way = this.keys[slot] === key ? 0 : this.keys[slot + 1] === key ? 1 : (this.recent[set] as number) ^ 1;
    this.keys[slot + way] = key;
    this.values[slot + way] = value;
    this.recent[set] = way;
  }

  clear(): void {
    this.values.fill(undefined);
  }

  /** Fibonacci hashing: the top bits of the address times 2³²/φ, so that neighbouring addresses spread out. */
  private setOf(key: number): number {
    return this.shift === 32 ? 0 : Math.imul(key, 0x9e3779b1) >>> this.shift;
  }
}
