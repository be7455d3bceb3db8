/**
 * Longest-prefix match over IP prefixes: a binary trie (one level per address bit) whose nodes live in typed
 * arrays, so that a list of a million ranges is a few flat buffers rather than a million objects, and a lookup
 * is at most 32 (IPv4) or 128 (IPv6) array reads.
 *
 * Hand-written because npm has no well-kept library for it: the IP packages that are widely used (ipaddr.js,
 * ip-address, cidr-tools, netmask) parse and compare ranges but answer "which range holds this address" by
 * testing each range in turn, and the few trie packages (arkime-iptrie, longest-prefix-match) have a few
 * thousand downloads a month and no IPv6 longest match with a value. Parsing stays with ipaddr.js.
 */

const NONE = -1;

export class PrefixTrie {
  /** Child for bit 0 and for bit 1 of node i; 0 means none (node 0 is the root, never a child). */
  private zero: Int32Array;
  private one: Int32Array;
  /** The value stored at node i (an index the caller gives meaning to), or NONE. */
  private value: Int32Array;
  private nodes = 1;
  private count = 0;

  readonly bits: 32 | 128;

  constructor(bits: 32 | 128) {
    this.bits = bits;
    const initial = 1024;
    this.zero = new Int32Array(initial);
    this.one = new Int32Array(initial);
    this.value = new Int32Array(initial).fill(NONE);
  }

  /** Prefixes stored. */
  get size(): number {
    return this.count;
  }

  /**
   * Stores `value` for the prefix made of the first `length` bits of `address` (big-endian bytes). A prefix
   * stored twice keeps its first value; returns false then.
   */
  insert(address: ArrayLike<number>, length: number, value: number): boolean {
    let node = 0;
    for (let i = 0; i < length; i++) {
      const bit = ((address[i >> 3] as number) >> (7 - (i & 7))) & 1;
      const children = bit === 0 ? this.zero : this.one;
      let next = children[node] as number;
      if (next === 0) {
        next = this.grow();
        // `grow` may have replaced the arrays.
        (bit === 0 ? this.zero : this.one)[node] = next;
      }
      node = next;
    }
    if (this.value[node] !== NONE) return false;
    this.value[node] = value;
    this.count++;
    return true;
  }

  /**
   * The value and length of the longest stored prefix of `address` (big-endian bytes), or undefined when none
   * holds it.
   */
  lookup(address: ArrayLike<number>): { value: number; length: number } | undefined {
    const { zero, one, value } = this;
    let node = 0;
    let found = value[0] as number;
    let foundLength = 0;
    for (let i = 0; i < this.bits; i++) {
      const bit = ((address[i >> 3] as number) >> (7 - (i & 7))) & 1;
      node = (bit === 0 ? zero[node] : one[node]) as number;
      if (node === 0) break;
      const v = value[node] as number;
      if (v !== NONE) {
        found = v;
        foundLength = i + 1;
      }
    }
    return found === NONE ? undefined : { value: found, length: foundLength };
  }

  private grow(): number {
    if (this.nodes === this.zero.length) {
      const size = this.zero.length * 2;
      const zero = new Int32Array(size);
      zero.set(this.zero);
      const one = new Int32Array(size);
      one.set(this.one);
      const value = new Int32Array(size).fill(NONE);
      value.set(this.value);
      this.zero = zero;
      this.one = one;
      this.value = value;
    }
    return this.nodes++;
  }
}
