/**
 * The generator source: lines from the line maker, in batches, optionally paced. Its position is the
 * number of lines emitted; line `i` is a function of the options and `i`, so a rerun continues exactly.
 */
import type { Source, SourceContext, SourceOutput } from '../../../engine/operator.ts';
import { type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import { createLineMaker } from './lines.ts';
import type { GeneratorSourceOptions } from './schema.ts';

/** `origin.file` of generated records. */
export const GENERATOR_FILE = 'generator';
/** Timestamps advance as for this many requests per second when no rate is set. */
const DEFAULT_SIMULATED_RATE = 100;
/** With a rate, batches are sized for about this many emits per second (latency over batch size). */
const PACED_BATCHES_PER_SECOND = 10;

export function createGeneratorSource(options: GeneratorSourceOptions, ctx: SourceContext): Source {
  return {
    async run(out: SourceOutput): Promise<void> {
      const restored = ctx.restoredPosition;
      const first = typeof restored === 'number' && Number.isSafeInteger(restored) && restored >= 0 ? restored : 0;
      if (restored !== undefined && first !== restored) {
        ctx.logger.warn('ignoring an unreadable checkpoint position; generating from the first line', { restored });
      }
      const rate = options.rate_per_second;
      const simulated = rate ?? DEFAULT_SIMULATED_RATE;
      const maker = createLineMaker({
        format: options.format,
        seed: options.seed,
        malformed_ratio: options.malformed_ratio,
        // `now` is the time of the line this run starts with, so a resumed timeline stays continuous.
        start_time: options.start_time === 'now' ? Date.now() - (first * 1000) / simulated : options.start_time,
        requests_per_second: simulated,
        with_sequence: options.with_sequence,
        start_index: first,
      });
      const count = options.count ?? Number.POSITIVE_INFINITY;
      const perBatch =
        rate === undefined
          ? ctx.batchMaxRecords
          : Math.max(1, Math.min(ctx.batchMaxRecords, Math.ceil(rate / PACED_BATCHES_PER_SECOND)));
      const source = ctx.id;
      const started = performance.now();
      let index = first;
      let bytes = 0;
      while (index < count && !out.stopping.aborted) {
        const n = Math.min(perBatch, count - index);
        const records: EtlRecord[] = new Array(n);
        let batchBytes = 0;
        for (let k = 0; k < n; k++) {
          const message = maker.next();
          batchBytes += message.length + 1;
          records[k] = { message, [ORIGIN]: { source, file: GENERATOR_FILE, line: index + k + 1 } };
        }
        index += n;
        if (rate !== undefined) {
          const due = started + ((index - first) * 1000) / rate;
          await pause(due - performance.now(), out.stopping);
          if (out.stopping.aborted) return;
        }
        await out.emit(records, index, batchBytes);
        bytes += batchBytes;
        if (Number.isFinite(count)) out.progress(bytes, Math.round((bytes / (index - first)) * (count - first)));
      }
    },
  };
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
