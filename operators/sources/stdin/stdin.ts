/**
 * The stdin source: the file source's line splitting over a stream. Ends at end of input; a partial
 * batch is sent after a short pause so `tail -F … | etl` stays live.
 */
import type { Readable } from 'node:stream';
import type { Source, SourceContext, SourceOutput } from '../../../engine/operator.ts';
import { StreamReader } from '../../shared/line-reader/chunks.ts';
import { allocateReadBuffer, Batch, newCursor } from '../../shared/line-reader/lines.ts';
import { IDLE_FLUSH_MS, type PumpState, pump } from '../../shared/line-reader/pump.ts';
import type { StdinSourceOptions } from './schema.ts';

/** `origin.file` of stdin records. */
export const STDIN_FILE = 'stdin';

export function createStdinSource(
  options: StdinSourceOptions,
  ctx: SourceContext,
  input: Readable = process.stdin,
): Source {
  const truncatedLines = ctx.metrics.counter(
    'etl_source_truncated_lines_total',
    'Lines longer than max_line_bytes, cut and marked truncated',
  );
  let reader: StreamReader | undefined;
  let closed = false;
  return {
    async run(out: SourceOutput): Promise<void> {
      reader = new StreamReader(input);
      const buf = allocateReadBuffer(options.max_line_bytes);
      const batch = new Batch(ctx.batchMaxRecords);
      const state: PumpState = { cursor: newCursor(ctx.id, STDIN_FILE), carry: null };
      const flush = async (): Promise<void> => {
        if (batch.empty || out.stopping.aborted) return;
        const { records, bytes, truncated } = batch.take();
        if (truncated > 0) truncatedLines.inc(truncated);
        await out.emit(records, undefined, bytes);
      };
      await pump(state, reader, buf, batch, {
        maxLineBytes: options.max_line_bytes,
        final: true,
        budget: Number.POSITIVE_INFINITY,
        stopping: out.stopping,
        idleMs: IDLE_FLUSH_MS,
        flush,
      });
      await flush();
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      // process.stdin is shared with the process; only stop reading it. Injected streams are ours.
      if (input === process.stdin) input.pause();
      else reader?.destroy();
    },
  };
}
