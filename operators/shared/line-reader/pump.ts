/**
 * The read loop shared by the file and stdin sources: fill the buffer, split lines into the batch,
 * hand a full batch downstream and wait for it before splitting further. The only bytes held beyond
 * the emitted position are one buffer's worth (plus a partial line carried between calls).
 */
import type { ChunkReader } from './chunks.ts';
import { type Batch, type LineCursor, takeLines } from './lines.ts';

/** One input's reading state between pump calls. */
export interface PumpState {
  readonly cursor: LineCursor;
  /** Bytes of a partial line read but not yet consumed; they start at `cursor.offset`. */
  carry: Buffer | null;
}

export interface PumpOptions {
  readonly maxLineBytes: number;
  /** Take a last line without newline at end of input (finite inputs; a followed file's timeout). */
  readonly final: boolean;
  /** Stop reading after about this many bytes, so followed files take turns. */
  readonly budget: number;
  readonly stopping: AbortSignal;
  /** Sends the batch downstream; awaited, which is the backpressure. */
  flush(): Promise<void>;
  /** For streams that may pause: flush a non-empty batch after this long without data. */
  readonly idleMs?: number;
}

export interface PumpResult {
  /** Bytes read from the reader during this call. */
  readonly bytesRead: number;
  /** The reader reported no more bytes (end of file or stream, for now). */
  readonly eof: boolean;
}

export async function pump(
  state: PumpState,
  reader: ChunkReader,
  buf: Buffer,
  batch: Batch,
  options: PumpOptions,
): Promise<PumpResult> {
  const { cursor } = state;
  let start = 0;
  let end = 0;
  if (state.carry !== null) {
    end = state.carry.copy(buf, 0);
    state.carry = null;
  }
  let eof = false;
  let bytesRead = 0;
  for (;;) {
    start = takeLines(cursor, buf, start, end, batch, options.maxLineBytes, eof && options.final);
    if (batch.full) {
      await options.flush();
      if (options.stopping.aborted) break;
      continue;
    }
    // What is left in [start, end) is at most one partial line.
    if (eof || options.stopping.aborted || bytesRead >= options.budget) break;
    if (start > 0) {
      buf.copyWithin(0, start, end);
      end -= start;
      start = 0;
    }
    const n = await readIdle(reader, buf, end, batch, options);
    if (n === 0) {
      eof = true;
      if (!options.final || start === end || options.stopping.aborted) break;
      continue;
    }
    end += n;
    bytesRead += n;
  }
  state.carry = start < end ? Buffer.from(buf.subarray(start, end)) : null;
  return { bytesRead, eof };
}

/** Reads; a stream that stays silent with records waiting gets them flushed first. */
async function readIdle(reader: ChunkReader, buf: Buffer, end: number, batch: Batch, options: PumpOptions) {
  const read = reader.read(buf, end, buf.length - end, options.stopping);
  if (options.idleMs === undefined || batch.empty) return read;
  let timer: NodeJS.Timeout | undefined;
  const idle = new Promise<'idle'>((resolve) => {
    timer = setTimeout(resolve, options.idleMs, 'idle');
  });
  const first = await Promise.race([read, idle]);
  clearTimeout(timer);
  if (first !== 'idle') return first;
  await options.flush();
  return read;
}

/** A partial batch waits at most this long for more input before it is sent (ingest latency). */
export const IDLE_FLUSH_MS = 100;
