/**
 * Gives memory back once a pipeline goes quiet after a burst. V8 keeps its young generation grown to the largest
 * burst's size (64 MB after the first read of 10,000 followed files) and its memory reducer, which starts only
 * after a major GC, rarely runs in a process that mostly waits: a followed input held that memory for good. One
 * memory-reducing GC, when no record has arrived for a whole interval after some did, brings `bench/file-follow.ts`
 * (10,000 idle files) from 208 to 146 MB. It costs one full collection per quiet spell, never on the record path.
 */

type Collect = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

/** V8's `gc`, as `--expose-gc` gives it, obtained without that flag (set now, read from a fresh context). */
function exposedGc(): Collect | undefined {
  const existing = (globalThis as { gc?: unknown }).gc;
  if (typeof existing === 'function') return existing as Collect;
  try {
    // Loaded here, at the first quiet spell: node:v8 and node:vm are no part of a run's start.
    process.getBuiltinModule('node:v8').setFlagsFromString('--expose-gc');
    const gc: unknown = process.getBuiltinModule('node:vm').runInNewContext('gc');
    return typeof gc === 'function' ? (gc as Collect) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Checks `activity` (a count that grows while records flow: records read) every `intervalMs`; after it grew and
 * then stayed the same for a whole interval, collects once with memory reduction, then waits for activity again.
 * Returns the function that stops it. `collect` is for tests.
 */
export function releaseMemoryWhenIdle(
  activity: () => number,
  intervalMs: number,
  collect: (() => void) | undefined = undefined,
): () => void {
  const release =
    collect ??
    (() => {
      const gc = exposedGc();
      if (gc) gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    });
  let last = activity();
  let busy = false;
  const timer = setInterval(() => {
    const now = activity();
    if (now !== last) {
      last = now;
      busy = true;
    } else if (busy) {
      busy = false;
      release();
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
