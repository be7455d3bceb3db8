/**
 * Between requests and the pipeline: a bounded queue of decoded requests that one loop sends downstream, several
 * small requests to a batch, a large one over several batches. A request is answered from its batches' `durable()`:
 * only once every record (and dead letter) of it is in a committed checkpoint. Waiting is bounded twice: by the
 * number of requests being read or waiting (past it, 429 at once) and by how long one waits for credit (past it, 503).
 */
import type { BatchOptions, Emitted, SourceOutput } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import type { Decoded } from './body.ts';

export interface IntakeLimits {
  /** Requests being read or waiting to be sent downstream; one more is refused (429). */
  readonly maxWaiting: number;
  /** How long a request waits to be sent downstream before it is refused (503). */
  readonly maxWaitMs: number;
  /** Records per batch sent downstream. */
  readonly batchMaxRecords: number;
  /** Told the number of waiting requests each time it changes (a gauge). */
  readonly onWaiting?: (waiting: number) => void;
}

/** The W3C Trace Context a request came with (`traceparent` valid, `tracestate` only with it). */
export interface TraceContext {
  readonly traceparent: string;
  readonly tracestate?: string;
}

/** What the client is answered. */
export type Outcome =
  | { readonly status: 200; readonly records: number; readonly deadLetters: number }
  | { readonly status: 429 | 503; readonly retry: true; readonly reason: string }
  | { readonly status: 413 | 500; readonly reason: string };

/** What the ingest route asks of an intake (this one, or the write-ahead buffer's in buffered-intake.ts). */
export interface RequestIntake {
  /** Admits a request before its body is read, or says why not; an admitted one is `release`d once. */
  admit(): Outcome | undefined;
  release(): void;
  /** Takes the decoded body of an admitted (and released) request; resolves with the answer to give. */
  submit(decoded: Decoded, trace: TraceContext | undefined): Promise<Outcome>;
}

/** What the source asks of an intake besides the route's part. */
export interface SourceIntake extends RequestIntake {
  /** Requests read and waiting (for credit, or for their append). */
  readonly waiting: number;
  /** Requests admitted whose body is being read. */
  readonly beingRead: number;
  /** Sends records downstream until `out.stopping`. */
  run(out: SourceOutput): Promise<void>;
  /** Refuses every waiting and every new request with `reason` (503). Idempotent. */
  close(reason: string): void;
  /** Resolves once every request taken has been answered. */
  settled(): Promise<void>;
  /** Releases what the intake holds (files, locks), once `settled`. Idempotent. */
  dispose?(): Promise<void>;
}

interface Pending {
  readonly decoded: Decoded;
  /** The request's trace context; batches never mix requests of different ones. */
  readonly trace: TraceContext | undefined;
  /** Records sent downstream so far. */
  next: number;
  /** Taken by the sending loop: the wait timer no longer applies. */
  taken: boolean;
  readonly batches: Emitted[];
  timer: NodeJS.Timeout | undefined;
  readonly answer: (outcome: Outcome) => void;
}

/** One batch to send: its records, the dead letters of the requests in it, the requests that have records in it. */
interface Assembled {
  readonly records: EtlRecord[];
  readonly deadLetters: EtlRecord[];
  readonly bytes: number;
  readonly trace: TraceContext | undefined;
  readonly parts: Pending[];
}

export class Intake implements SourceIntake {
  private readonly limits: IntakeLimits;
  private readonly queue: Pending[] = [];
  /** Answers not given yet (waiting, sending, or waiting for durability). */
  private unanswered = 0;
  /** Requests admitted whose body is being read. */
  private reading = 0;
  private settledWaiters: Array<() => void> = [];
  private wake: (() => void) | undefined;
  private closedReason: string | undefined;

  constructor(limits: IntakeLimits) {
    this.limits = limits;
  }

  /**
   * Admits a request before its body is read, or says why not: requests being read count with the waiting ones
   * against `maxWaiting`, so memory stays bounded by about that many bodies however many clients connect. An
   * admitted request is `release`d once, when its body is decoded or it ends otherwise.
   */
  admit(): Outcome | undefined {
    if (this.closedReason !== undefined) return { status: 503, retry: true, reason: this.closedReason };
    if (this.queue.length + this.reading >= this.limits.maxWaiting) {
      return {
        status: 429,
        retry: true,
        reason: `${this.queue.length + this.reading} requests are being read or wait for the pipeline (max_waiting_requests)`,
      };
    }
    this.reading++;
    return undefined;
  }

  release(): void {
    this.reading--;
  }

  get waiting(): number {
    return this.queue.length;
  }

  /** Requests admitted whose body is being read. */
  get beingRead(): number {
    return this.reading;
  }

  /** Queues the decoded body of an admitted (and released) request; resolves with the answer to give. */
  submit(decoded: Decoded, trace: TraceContext | undefined): Promise<Outcome> {
    if (this.closedReason !== undefined) {
      return Promise.resolve({ status: 503, retry: true, reason: this.closedReason });
    }
    if (decoded.records.length === 0 && decoded.deadLetters.length === 0) {
      return Promise.resolve({ status: 200, records: 0, deadLetters: 0 });
    }
    this.unanswered++;
    return new Promise<Outcome>((resolve) => {
      const pending: Pending = {
        decoded,
        trace,
        next: 0,
        taken: false,
        batches: [],
        timer: undefined,
        answer: (outcome) => {
          if (pending.timer) clearTimeout(pending.timer);
          resolve(outcome);
          this.answered();
        },
      };
      pending.timer = setTimeout(() => {
        if (pending.taken) return;
        this.queue.splice(this.queue.indexOf(pending), 1);
        this.limits.onWaiting?.(this.queue.length);
        pending.answer({
          status: 503,
          retry: true,
          reason: `the pipeline did not take the request within ${this.limits.maxWaitMs} ms (max_wait_ms)`,
        });
      }, this.limits.maxWaitMs);
      this.queue.push(pending);
      this.limits.onWaiting?.(this.queue.length);
      this.wake?.();
    });
  }

  /** Sends queued requests downstream until `out.stopping`; then refuses what still waits and every new request. */
  async run(out: SourceOutput): Promise<void> {
    const stopping = out.stopping;
    const onStop = () => this.wake?.();
    stopping.addEventListener('abort', onStop, { once: true });
    try {
      while (!stopping.aborted) {
        if (this.queue.length === 0) {
          await new Promise<void>((resolve) => {
            this.wake = resolve;
          });
          this.wake = undefined;
          continue;
        }
        const batch = this.assemble();
        let emitted: Emitted;
        try {
          emitted = await out.emit(batch.records, undefined, batch.bytes, batchOptions(batch));
        } catch (error) {
          this.failed(batch, error);
          throw error;
        }
        this.sent(batch, emitted);
      }
    } finally {
      stopping.removeEventListener('abort', onStop);
      this.close('the source is stopping');
    }
  }

  /** Refuses every waiting and every new request with `reason` (503). Idempotent. */
  close(reason: string): void {
    this.closedReason ??= reason;
    for (const pending of this.queue.splice(0)) {
      pending.answer({ status: 503, retry: true, reason: this.closedReason });
    }
    this.limits.onWaiting?.(0);
  }

  /** Resolves once every request taken has been answered. */
  settled(): Promise<void> {
    if (this.unanswered === 0) return Promise.resolve();
    return new Promise((resolve) => this.settledWaiters.push(resolve));
  }

  private answered(): void {
    this.unanswered--;
    if (this.unanswered > 0) return;
    for (const resolve of this.settledWaiters.splice(0)) resolve();
  }

  /** The next batch from the head of the queue: whole requests while they fit, the rest of a large one later. */
  private assemble(): Assembled {
    const max = this.limits.batchMaxRecords;
    const records: EtlRecord[] = [];
    const deadLetters: EtlRecord[] = [];
    const parts: Pending[] = [];
    const trace = (this.queue[0] as Pending).trace;
    let bytes = 0;
    while (this.queue.length > 0 && records.length < max) {
      const pending = this.queue[0] as Pending;
      if (parts.length > 0 && !sameTrace(pending.trace, trace)) break;
      const { decoded } = pending;
      if (!pending.taken) {
        pending.taken = true;
        clearTimeout(pending.timer);
        // Dead letters go with the request's first batch; its bytes are counted once.
        for (const dl of decoded.deadLetters) deadLetters.push(dl);
        bytes += decoded.bytes;
      }
      const take = Math.min(max - records.length, decoded.records.length - pending.next);
      for (let i = pending.next; i < pending.next + take; i++) records.push(decoded.records[i] as EtlRecord);
      pending.next += take;
      parts.push(pending);
      if (pending.next < decoded.records.length) break;
      this.queue.shift();
    }
    this.limits.onWaiting?.(this.queue.length);
    return { records, deadLetters, bytes, trace, parts };
  }

  /** The run failed while sending `batch`: its requests are answered 500 (the others, 503, by `close`). */
  private failed(batch: Assembled, error: unknown): void {
    for (const pending of batch.parts) {
      const i = this.queue.indexOf(pending);
      if (i >= 0) this.queue.splice(i, 1);
      pending.answer({ status: 500, reason: `the pipeline failed: ${errorMessage(error)}` });
    }
  }

  private sent(batch: Assembled, emitted: Emitted): void {
    for (const pending of batch.parts) {
      if (!emitted.sent) {
        // The source is stopping. A request partly sent is refused too: its client sends it again (at least once).
        const i = this.queue.indexOf(pending);
        if (i >= 0) this.queue.splice(i, 1);
        pending.answer({ status: 503, retry: true, reason: 'the source is stopping' });
        continue;
      }
      pending.batches.push(emitted);
      if (pending.next < pending.decoded.records.length) continue;
      const { records, deadLetters } = pending.decoded;
      Promise.all(pending.batches.map((b) => b.durable())).then(
        () => pending.answer({ status: 200, records: records.length, deadLetters: deadLetters.length }),
        (error: unknown) =>
          pending.answer({
            status: 500,
            reason: `the records are not durable: ${errorMessage(error)}`,
          }),
      );
    }
  }
}

/** The dead letters and the trace context that go with a batch. */
function batchOptions(batch: Assembled): BatchOptions {
  return {
    ...(batch.deadLetters.length > 0 ? { deadLetters: batch.deadLetters } : {}),
    ...(batch.trace === undefined ? {} : batch.trace),
  };
}

function sameTrace(a: TraceContext | undefined, b: TraceContext | undefined): boolean {
  return a?.traceparent === b?.traceparent && a?.tracestate === b?.tracestate;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
