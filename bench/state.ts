/**
 * What a checkpoint of large operator state costs: 1M keys (a count per client, say), of which 1% change
 * between two checkpoints.
 * - inline:  the state returned by `snapshot()`, stored in the state file (serialised whole at every checkpoint).
 * - keyed:   the same map in `ctx.keyed()` (engine/state/keyed.ts): only changed keys are appended.
 * Figures: time of a checkpoint (median of `--rounds`), the part of it the pipeline waits for at the cut,
 * bytes written per checkpoint, time to restore, peak RSS.
 * Usage: node bench/state.ts [--keys N] [--changed N] [--rounds N]
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyedStateBackend } from '../engine/state/keyed.ts';
import { StateStore } from '../engine/state/store.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const KEYS = Number(arg('keys') ?? 1_000_000);
const CHANGED = Number(arg('changed') ?? KEYS / 100);
const ROUNDS = Number(arg('rounds') ?? 5);

function report(name: string, value: number, unit: string): void {
  console.log(`${name}: ${Number.isInteger(value) ? value : value.toFixed(1)} ${unit}`);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1] as number;
}

const key = (i: number) => `203.0.113.${i % 256}/${i}`;

async function inline(dir: string): Promise<void> {
  const store = new StateStore(dir, 'bench');
  const counts: Record<string, number> = {};
  for (let i = 0; i < KEYS; i++) counts[key(i)] = 1;
  const times: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    for (let i = 0; i < CHANGED; i++) counts[key((i * 7919 + round) % KEYS)] = round;
    const t = performance.now();
    await store.save({
      committed: { id: round, time: '', positions: {}, sinks: {}, transforms: { counter: counts } },
    });
    times.push(performance.now() - t);
  }
  report('state_inline_checkpoint', median(times), 'ms');
  report('state_inline_bytes_per_checkpoint', statSync(store.path).size, 'bytes');
}

async function keyed(dir: string): Promise<void> {
  const backend = new KeyedStateBackend(dir, 'bench');
  const counts = backend.map<number>('counter', 'counts');
  await backend.restore(undefined, undefined);
  for (let i = 0; i < KEYS; i++) counts.set(key(i), 1);
  let t = performance.now();
  await backend.prepare(1);
  report('state_keyed_first_checkpoint', performance.now() - t, 'ms');
  const file = join(dir, 'state', 'bench', 'counter.counts.1.log');
  const times: number[] = [];
  const stalls: number[] = [];
  let before = statSync(file).size;
  let grown = 0;
  for (let round = 2; round <= ROUNDS + 1; round++) {
    for (let i = 0; i < CHANGED; i++) counts.set(key((i * 7919 + round) % KEYS), round);
    t = performance.now();
    const written = backend.prepare(round);
    // The part taken at the cut, while the pipeline is drained; the rest runs beside the next batches.
    stalls.push(performance.now() - t);
    await written;
    times.push(performance.now() - t);
    const size = statSync(file).size;
    grown = size - before;
    before = size;
  }
  report('state_keyed_checkpoint', median(times), 'ms');
  report('state_keyed_pause_at_cut', median(stalls), 'ms');
  report('state_keyed_bytes_per_checkpoint', grown, 'bytes');
  t = performance.now();
  const rerun = new KeyedStateBackend(dir, 'bench');
  const restored = rerun.map<number>('counter', 'counts');
  await rerun.restore({ 'counter.counts': { file: 'counter.counts.1.log', generation: 1 } }, ROUNDS + 1);
  report('state_keyed_restore', performance.now() - t, 'ms');
  if (restored.size !== KEYS) throw new Error(`restored ${restored.size} keys of ${KEYS}`);
}

const dir = mkdtempSync(join(tmpdir(), 'etl-bench-state-'));
try {
  console.log(`${KEYS} keys, ${CHANGED} changed between checkpoints, median of ${ROUNDS} checkpoints`);
  await inline(join(dir, 'inline'));
  await keyed(join(dir, 'keyed'));
  report('state_peak_rss', Math.round(process.resourceUsage().maxRSS / 1024), 'MiB');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
