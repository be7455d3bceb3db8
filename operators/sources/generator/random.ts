/**
 * Small seeded generators: splitmix32 to derive seeds, sfc32 for the stream (fast, 32-bit state
 * words, good statistical quality). Deterministic across platforms: only 32-bit integer arithmetic.
 */

/** A deterministic source of uint32 values. */
export interface Random {
  /** Uniform in [0, 2^32). */
  next(): number;
}

/** Mixes a 32-bit value into a well-distributed one (splitmix32 finaliser). */
export function mix32(value: number): number {
  let z = (value + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

/** sfc32 seeded from two 32-bit values (e.g. the user's seed and a block number). */
export function sfc32(seed: number, stream: number): Random {
  let a = mix32(seed);
  let b = mix32(a ^ stream);
  let c = mix32(b + 0x6a09e667);
  let d = 1;
  const rng = {
    next(): number {
      const t = (((a + b) | 0) + d) | 0;
      d = (d + 1) | 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) | 0;
      c = (c << 21) | (c >>> 11);
      c = (c + t) | 0;
      return t >>> 0;
    },
  };
  // Discard the first outputs, which still echo the seed.
  for (let i = 0; i < 12; i++) rng.next();
  return rng;
}

/** Uniform in [0, 1). */
export function unit(rng: Random): number {
  return rng.next() / 4294967296;
}

/** Uniform integer in [0, n). */
export function below(rng: Random, n: number): number {
  return Math.floor((rng.next() / 4294967296) * n);
}

/** A categorical distribution flattened into a 1024-slot table: one draw is one array read. */
export class Weighted<T> {
  private readonly table: T[];

  constructor(choices: ReadonlyArray<readonly [T, number]>) {
    const total = choices.reduce((sum, [, w]) => sum + w, 0);
    const table: T[] = [];
    let acc = 0;
    for (const [value, weight] of choices) {
      acc += weight;
      const until = Math.round((acc / total) * 1024);
      while (table.length < until) table.push(value);
    }
    this.table = table;
  }

  pick(rng: Random): T {
    return this.table[rng.next() >>> 22] as T;
  }
}
