/**
 * What a checkpoint's state save costs a busy pipeline: `StateStore.save` of a small state (source positions, as
 * a live pipeline saves twice per checkpoint) while the event loop runs batches of synchronous work, as a pipeline
 * that is behind does (`--busy-ms` per turn, default 5). Prints the median and p95 time a save takes from call to
 * resolved, and the longest turn of the event loop the saves themselves caused (the blocking a synchronous write
 * costs). Usage: node bench/state-save.ts [--rounds 200] [--busy-ms 5]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { StateStore } from '../engine/state/store.ts';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '200' }, 'busy-ms': { type: 'string', default: '5' } },
});
const ROUNDS = Number(values.rounds);
const BUSY_MS = Number(values['busy-ms']);

const dir = mkdtempSync(join(tmpdir(), 'etl-state-save-'));
const store = new StateStore(dir, 'bench');
const checkpoint = (id: number) => ({
  id,
  time: new Date().toISOString(),
  positions: {
    logs: { files: [{ path: '/var/log/nginx/access.log', offset: id * 4096, fingerprint: 'ab'.repeat(16) }] },
  },
  sinks: {},
  transforms: {},
});

// A pipeline that is behind: every turn of the event loop runs a batch of BUSY_MS of synchronous work.
let busy = true;
const spin = () => {
  if (!busy) return;
  const until = performance.now() + BUSY_MS;
  while (performance.now() < until) {}
  setImmediate(spin);
};
setImmediate(spin);

const times: number[] = [];
const blocking: number[] = [];
for (let round = 1; round <= ROUNDS; round++) {
  const t0 = performance.now();
  const done = store.save({ committed: checkpoint(round) });
  // The synchronous part of the call: how long it blocks the event loop.
  const spent = performance.now() - t0;
  await done;
  times.push(performance.now() - t0);
  blocking.push(spent);
}
busy = false;
rmSync(dir, { recursive: true, force: true });
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const q = (xs: number[], p: number) => sorted(xs)[Math.min(xs.length - 1, Math.floor(p * xs.length))] as number;
console.log(`state_save_busy_${BUSY_MS}ms_p50: ${q(times, 0.5).toFixed(1)} ms`);
console.log(`state_save_busy_${BUSY_MS}ms_p95: ${q(times, 0.95).toFixed(1)} ms`);
console.log(`state_save_blocking_p50: ${q(blocking, 0.5).toFixed(1)} ms`);
console.log(`state_save_blocking_p95: ${q(blocking, 0.95).toFixed(1)} ms`);
