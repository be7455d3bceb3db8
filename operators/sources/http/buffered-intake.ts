/**
 * The intake with a write-ahead buffer (`buffer`): a request is answered 200 once its records and dead letters
 * are appended (and fsynced) to the log (wal.ts), and one loop sends the log's entries downstream in order, as
 * a file source reads a file. Its checkpoint position is `{ offset, record }`: the log position of the next entry
 * to send, and how many records of it were sent already (a large request spans several batches; its dead letters
 * go with the first). A committed checkpoint deletes the segments before its position; a rerun sends on from it,
 * so what was answered 200 reaches the sinks exactly once when they commit with the checkpoint.
 */
import type { BatchOptions, SourceOutput } from '../../../engine/operator.ts';
import { type EtlRecord, ORIGIN, type Origin } from '../../../engine/record.ts';
import type { Decoded } from './body.ts';
import type { Outcome, SourceIntake, TraceContext } from './intake.ts';
import { HEADER_BYTES, SegmentLog, type SegmentLogOptions } from './wal.ts';

/** Entries appended in this run are kept decoded until sent, up to this many bytes (as encoded); past it they are read back. */
const DECODED_CACHE_BYTES = 32 * 1024 * 1024;

export interface BufferedIntakeOptions {
  readonly log: Omit<SegmentLogOptions, 'from'>;
  /** Requests being read at once; one more is refused (429). */
  readonly maxReading: number;
  readonly batchMaxRecords: number;
  /** The checkpointed position (`SourceContext.restoredPosition`). */
  readonly restoredPosition: unknown;
  /** Told the bytes the log holds each time they change (a gauge). */
  readonly onBytes?: (bytes: number) => void;
}

/** The source's checkpoint position. */
export interface BufferPosition {
  /** The log position of the next entry to send. */
  readonly offset: number;
  /** Records of that entry already sent. */
  readonly record: number;
}

/** One request as the log keeps it. */
export interface BufferedEntry {
  readonly records: EtlRecord[];
  readonly deadLetters: EtlRecord[];
  /** Bytes of the request's (gunzipped) body. */
  readonly bytes: number;
  readonly trace: TraceContext | undefined;
}

/** An entry being sent: where it is and how far. */
interface Cursor {
  readonly entry: BufferedEntry;
  readonly offset: number;
  readonly next: number;
  /** Records sent (or skipped, after a restore). */
  sent: number;
  /** Whether its dead letters and bytes went with a batch already. */
  started: boolean;
}

export class BufferedIntake implements SourceIntake {
  private readonly options: BufferedIntakeOptions;
  private log: SegmentLog | undefined;
  private reading = 0;
  private appending = 0;
  private closedReason: string | undefined;
  private settledWaiters: Array<() => void> = [];
  private readonly decoded = new Map<number, { readonly entry: BufferedEntry; readonly size: number }>();
  private decodedBytes = 0;

  constructor(options: BufferedIntakeOptions) {
    this.options = options;
  }

  /** Opens the log (takes its lock, truncates a torn tail); before the server listens. */
  async open(): Promise<void> {
    const from = parsePosition(this.options.restoredPosition)?.offset;
    this.log = await SegmentLog.open({ ...this.options.log, from });
    this.options.onBytes?.(this.log.bytes);
  }

  get waiting(): number {
    return this.appending;
  }

  get beingRead(): number {
    return this.reading;
  }

  admit(): Outcome | undefined {
    if (this.closedReason !== undefined) return { status: 503, retry: true, reason: this.closedReason };
    if (this.reading >= this.options.maxReading) {
      return {
        status: 429,
        retry: true,
        reason: `${this.reading} requests are being read (max_waiting_requests)`,
      };
    }
    // Refused before its body is read when not even a header would fit.
    if (this.log && this.log.room(0) !== 'fits') return full(this.log.bytes);
    this.reading++;
    return undefined;
  }

  release(): void {
    this.reading--;
  }

  async submit(decoded: Decoded, trace: TraceContext | undefined): Promise<Outcome> {
    const log = this.log;
    if (this.closedReason !== undefined || !log) {
      return { status: 503, retry: true, reason: this.closedReason ?? 'the source is starting' };
    }
    const { records, deadLetters } = decoded;
    if (records.length === 0 && deadLetters.length === 0) return { status: 200, records: 0, deadLetters: 0 };
    const entry: BufferedEntry = { records, deadLetters, bytes: decoded.bytes, trace };
    const payload = encodeEntry(entry);
    const room = log.room(payload.length);
    if (room === 'too_large') {
      return {
        status: 413,
        reason: `the request takes ${payload.length} bytes in the write-ahead buffer, more than buffer.max_bytes`,
      };
    }
    if (room === 'full') return full(log.bytes);
    this.appending++;
    try {
      const { offset } = await log.append(payload);
      this.options.onBytes?.(log.bytes);
      if (this.decodedBytes + payload.length <= DECODED_CACHE_BYTES) {
        this.decoded.set(offset, { entry, size: payload.length });
        this.decodedBytes += payload.length;
      }
      return { status: 200, records: records.length, deadLetters: deadLetters.length };
    } catch (error) {
      return { status: 500, reason: `the write-ahead buffer could not take the request: ${errorMessage(error)}` };
    } finally {
      this.appending--;
      if (this.appending === 0) for (const resolve of this.settledWaiters.splice(0)) resolve();
    }
  }

  /** Sends the log's entries downstream in order until `out.stopping`; a committed checkpoint deletes segments. */
  async run(out: SourceOutput): Promise<void> {
    const log = this.log;
    if (!log) throw new Error('the write-ahead buffer is not open');
    out.onCommitted((position) => {
      const committed = parsePosition(position);
      if (!committed) return;
      void log.release(committed.offset).then(() => this.options.onBytes?.(log.bytes));
    });
    const restored = parsePosition(this.options.restoredPosition);
    let offset = Math.max(restored?.offset ?? log.start, log.start);
    let skip = restored && restored.offset >= log.start ? restored.record : 0;
    let lookahead: Cursor | undefined;
    const stopping = out.stopping;
    try {
      while (!stopping.aborted) {
        const first = lookahead ?? (await this.cursorAt(log, offset, skip));
        lookahead = undefined;
        skip = 0;
        if (!first) {
          await log.appended(offset, stopping);
          continue;
        }
        const batch = await this.assemble(log, first);
        lookahead = batch.lookahead;
        const emitted = await out.emit(batch.records, batch.position, batch.bytes, batch.options);
        // Not sent: the source is stopping; a rerun sends it from the checkpointed position.
        if (!emitted.sent) break;
        offset = batch.position.offset;
        skip = batch.position.record;
        if (lookahead === undefined && skip > 0) lookahead = batch.partial;
        this.forget(offset);
      }
    } finally {
      this.close('the source is stopping');
    }
  }

  close(reason: string): void {
    this.closedReason ??= reason;
  }

  settled(): Promise<void> {
    if (this.appending === 0) return Promise.resolve();
    return new Promise((resolve) => this.settledWaiters.push(resolve));
  }

  async dispose(): Promise<void> {
    await this.log?.close();
  }

  /**
   * A batch from `first` on: whole entries while they fit in `batchMaxRecords` and share a trace context, the
   * rest of a large one later. The entry read past the batch (another trace context) is handed back.
   */
  private async assemble(
    log: SegmentLog,
    first: Cursor,
  ): Promise<{
    records: EtlRecord[];
    position: BufferPosition;
    bytes: number;
    options: BatchOptions;
    lookahead: Cursor | undefined;
    partial: Cursor | undefined;
  }> {
    const max = this.options.batchMaxRecords;
    const records: EtlRecord[] = [];
    const deadLetters: EtlRecord[] = [];
    const trace = first.entry.trace;
    let bytes = 0;
    let cursor: Cursor | undefined = first;
    let position: BufferPosition = { offset: first.offset, record: first.sent };
    let lookahead: Cursor | undefined;
    while (cursor) {
      const { entry } = cursor;
      if (!cursor.started) {
        cursor.started = true;
        for (const dl of entry.deadLetters) deadLetters.push(dl);
        bytes += entry.bytes;
      }
      const take = Math.min(max - records.length, entry.records.length - cursor.sent);
      for (let i = cursor.sent; i < cursor.sent + take; i++) records.push(entry.records[i] as EtlRecord);
      cursor.sent += take;
      if (cursor.sent < entry.records.length) {
        return {
          records,
          position: { offset: cursor.offset, record: cursor.sent },
          bytes,
          options: opts(),
          lookahead,
          partial: cursor,
        };
      }
      position = { offset: cursor.next, record: 0 };
      if (records.length >= max) break;
      const next = await this.cursorAt(log, cursor.next, 0);
      if (next && !sameTrace(next.entry.trace, trace)) {
        lookahead = next;
        break;
      }
      cursor = next;
    }
    return { records, position, bytes, options: opts(), lookahead, partial: undefined };

    function opts(): BatchOptions {
      return {
        ...(deadLetters.length > 0 ? { deadLetters } : {}),
        ...(trace === undefined ? {} : trace),
      };
    }
  }

  /** The entry at or after `offset` (from memory when appended in this run), `skip` of its records sent already. */
  private async cursorAt(log: SegmentLog, offset: number, skip: number): Promise<Cursor | undefined> {
    const kept = this.decoded.get(offset);
    if (kept) {
      return { entry: kept.entry, offset, next: offset + HEADER_BYTES + kept.size, sent: skip, started: skip > 0 };
    }
    const read = await log.read(offset);
    if (!read) return undefined;
    // An entry after a gap (segments deleted by hand) starts from its first record.
    const sent = read.offset === offset ? skip : 0;
    return { entry: decodeEntry(read.payload), offset: read.offset, next: read.next, sent, started: sent > 0 };
  }

  /** Drops the decoded entries before `offset`: sent. */
  private forget(offset: number): void {
    for (const [at, kept] of this.decoded) {
      if (at >= offset) continue;
      this.decoded.delete(at);
      this.decodedBytes -= kept.size;
    }
  }
}

function full(bytes: number): Outcome {
  return {
    status: 503,
    retry: true,
    reason: `the write-ahead buffer is full (${bytes} bytes, buffer.max_bytes): the pipeline is behind`,
  };
}

/**
 * An entry's payload: JSON of `{ b, r, d, t?, s? }`: the body's bytes, the records and the dead letters as
 * `[fields, origin]` pairs (the origin rides on a symbol JSON does not see), and the trace context.
 */
export function encodeEntry(entry: BufferedEntry): Buffer {
  const pairs = (records: readonly EtlRecord[]) => records.map((record) => [record, record[ORIGIN] ?? null]);
  const value: Record<string, unknown> = { b: entry.bytes, r: pairs(entry.records), d: pairs(entry.deadLetters) };
  if (entry.trace) {
    value.t = entry.trace.traceparent;
    if (entry.trace.tracestate !== undefined) value.s = entry.trace.tracestate;
  }
  return Buffer.from(JSON.stringify(value));
}

export function decodeEntry(payload: Buffer): BufferedEntry {
  const value = JSON.parse(payload.toString('utf8')) as {
    b: number;
    r: Array<[EtlRecord, Origin | null]>;
    d: Array<[EtlRecord, Origin | null]>;
    t?: string;
    s?: string;
  };
  const records = (pairs: Array<[EtlRecord, Origin | null]>) =>
    pairs.map(([record, origin]) => {
      if (origin) record[ORIGIN] = origin;
      return record;
    });
  const trace =
    value.t === undefined
      ? undefined
      : value.s === undefined
        ? { traceparent: value.t }
        : { traceparent: value.t, tracestate: value.s };
  return { records: records(value.r), deadLetters: records(value.d), bytes: value.b, trace };
}

/** A checkpointed position, or undefined when there is none (a first run) or it is not one of ours. */
export function parsePosition(position: unknown): BufferPosition | undefined {
  if (typeof position !== 'object' || position === null) return undefined;
  const { offset, record } = position as Partial<BufferPosition>;
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(record)) return undefined;
  if ((offset as number) < 0 || (record as number) < 0) return undefined;
  return { offset: offset as number, record: record as number };
}

function sameTrace(a: TraceContext | undefined, b: TraceContext | undefined): boolean {
  return a?.traceparent === b?.traceparent && a?.tracestate === b?.tracestate;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
