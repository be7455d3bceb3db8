/**
 * A small deterministic PRNG (mulberry32) for benchmarks, so that every case of a run, and every run, sees the
 * same inputs. Uniform in [0, 1). (The leading `_` keeps bench/run.ts from running this file as a benchmark.)
 */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
