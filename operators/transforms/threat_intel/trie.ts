/**
 * Longest-prefix match over IP prefixes: a binary trie (one level per address bit) whose nodes live in typed
 * arrays, so that a list of a million ranges is a few flat buffers rather than a million objects, and a lookup
 * is at most 32 (IPv4) or 128 (IPv6) array reads. A large trie also keeps, for each value of the first 16 bits,
 * the node they lead to and the longest prefix met on the way (a 65,536-entry table, built by `prepare` or on the
 * first lookup after an insert): one read replaces the first 16 steps, which are most of a lookup's steps in a list
 * of scattered blocks.
 *
 * Hand-written because npm has no well-kept library for it: the IP packages that are widely used (ipaddr.js,
 * ip-address, cidr-tools, netmask) parse and compare ranges but answer "which range holds this address" by
 * testing each range in turn, and the few trie packages (arkime-iptrie, longest-prefix-match) have a few
 * thousand downloads a month and no IPv6 longest match with a value. Parsing stays with ipaddr.js.
 */

const NONE = -1;
/** Bits the table reads at once. */
const STRIDE = 16;
/** Prefixes from which a trie keeps the table (576 KiB): below, walks are short anyway. */
export const TABLE_FROM = 256;

export class PrefixTrie {
  /** Child for bit 0 and for bit 1 of node i; 0 means none (node 0 is the root, never a child). */
  private zero: Int32Array;
  private one: Int32Array;
  /** The value stored at node i (an index the caller gives meaning to), or NONE. */
  private value: Int32Array;
  private nodes = 1;
  private count = 0;
  /** For each value of the first STRIDE bits: the node there (0: none), and the longest prefix on the way. */
  private table: { node: Int32Array; value: Int32Array; length: Uint8Array } | undefined;
  private tableStale = true;

  readonly bits: 32 | 128;
  private readonly tableFrom: number;

  /** `tableFrom`: prefixes from which lookups use the table (tests lower it). */
  constructor(bits: 32 | 128, tableFrom = TABLE_FROM) {
    this.bits = bits;
    this.tableFrom = tableFrom;
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
    this.tableStale = true;
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
    let start = 0;
    const table = this.count >= this.tableFrom ? this.tableNow() : undefined;
    if (table !== undefined) {
      const lead = ((address[0] as number) << 8) | (address[1] as number);
      node = table.node[lead] as number;
      found = table.value[lead] as number;
      foundLength = table.length[lead] as number;
      if (node === 0) return found === NONE ? undefined : { value: found, length: foundLength };
      start = STRIDE;
    }
    for (let i = start; i < this.bits; i++) {
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

  /** Builds the table now if lookups will use it (rather than on the first of them). */
  prepare(): void {
    if (this.count >= this.tableFrom) this.tableNow();
  }

  private tableNow(): { node: Int32Array; value: Int32Array; length: Uint8Array } {
    if (this.table === undefined || this.tableStale) {
      const size = 1 << STRIDE;
      this.table ??= { node: new Int32Array(size), value: new Int32Array(size), length: new Uint8Array(size) };
      this.fill(this.table, 0, 0, 0, this.value[0] as number, 0);
      this.tableStale = false;
    }
    return this.table;
  }

  /**
   * Fills the table's entries under `node` (at `depth`, reached by the bits `lead`): those of a missing child
   * with no node and the longest prefix so far, the others from the nodes below, down to STRIDE bits.
   */
  private fill(
    table: { node: Int32Array; value: Int32Array; length: Uint8Array },
    node: number,
    depth: number,
    lead: number,
    found: number,
    foundLength: number,
  ): void {
    if (node === 0 && depth > 0) {
      const span = 1 << (STRIDE - depth);
      const from = lead * span;
      table.node.fill(0, from, from + span);
      table.value.fill(found, from, from + span);
      table.length.fill(foundLength, from, from + span);
      return;
    }
    const v = this.value[node] as number;
    if (v !== NONE) {
      found = v;
      foundLength = depth;
    }
    if (depth === STRIDE) {
      table.node[lead] = node;
      table.value[lead] = found;
      table.length[lead] = foundLength;
      return;
    }
    this.fill(table, this.zero[node] as number, depth + 1, lead * 2, found, foundLength);
    this.fill(table, this.one[node] as number, depth + 1, lead * 2 + 1, found, foundLength);
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
