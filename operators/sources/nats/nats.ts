/**
 * The `nats` source: a durable JetStream pull consumer. Messages are emitted in batches and acknowledged only
 * once the checkpoint holding them has committed (`Emitted.durable()`); until then they are kept in progress
 * (`working()`) so the server does not hand them to another process. A batch the run could not make durable is
 * nak'ed: the server delivers it again, to this process or another one sharing the consumer.
 */
import { isUtf8 } from 'node:buffer';
import {
  AckPolicy,
  type Consumer,
  type ConsumerMessages,
  DeliverPolicy,
  type JsMsg,
  jetstream,
  jetstreamManager,
  type JetStreamManager,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Source, SourceContext, SourceOutput } from '../../../engine/operator.ts';
import { type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import { connectNats } from '../../shared/nats-connect.ts';
import type { NatsSourceOptions } from './schema.ts';

/** What the checkpoint records: informational, since the broker's ack floor is the real position. */
export interface NatsPosition {
  readonly stream: string;
  readonly consumer: string;
  /** The highest stream sequence emitted so far by this process. */
  readonly last_sequence: number;
}

/** Messages emitted together and waiting for their checkpoint. */
interface Held {
  readonly messages: JsMsg[];
  /** When the server last heard of them (delivery or `working()`), ms. */
  touchedAt: number;
}

const decoder = new TextDecoder();

export function createNatsSource(options: NatsSourceOptions, ctx: SourceContext): Source {
  return new NatsSource(options, ctx);
}

class NatsSource implements Source {
  private readonly options: NatsSourceOptions;
  private readonly ctx: SourceContext;
  private nc: NatsConnection | undefined;
  /** Batches emitted and not yet settled (acked after their checkpoint, or nak'ed). */
  private readonly held = new Set<Held>();
  private readonly settling = new Set<Promise<void>>();
  private lastSequence = 0;
  private readonly redelivered: { inc(value?: number): void };
  private readonly acked: { inc(value?: number): void };
  private closed = false;

  constructor(options: NatsSourceOptions, ctx: SourceContext) {
    this.options = options;
    this.ctx = ctx;
    this.redelivered = ctx.metrics.counter(
      'etl_nats_redelivered_messages_total',
      'Messages the server delivered more than once (a process died, or a batch was not committed in time).',
    );
    this.acked = ctx.metrics.counter(
      'etl_nats_acked_messages_total',
      'Messages acknowledged to JetStream after the checkpoint holding them committed.',
    );
  }

  async run(out: SourceOutput): Promise<void> {
    const nc = await connectNats(this.options, this.ctx);
    this.nc = nc;
    const consumer = await this.consumer(nc);
    const ackWaitMs = ((await consumer.info(true)).config.ack_wait ?? 30e9) / 1e6;
    // `max_messages` bounds what the client fetches ahead of the pipeline: one batch being read, one ready.
    const messages = await consumer.consume({ max_messages: Math.max(2 * this.ctx.batchMaxRecords, 2) });
    const stop = () => messages.stop();
    if (out.stopping.aborted) stop();
    out.stopping.addEventListener('abort', stop, { once: true });
    const keepAlive = setInterval(() => this.keepInProgress(ackWaitMs), Math.max(ackWaitMs / 4, 200));
    keepAlive.unref();
    try {
      await this.pump(messages, out);
    } finally {
      clearInterval(keepAlive);
      out.stopping.removeEventListener('abort', stop);
    }
  }

  /**
   * Reads the consumer into batches: a batch holds what has arrived by the time the previous one was handed on
   * (up to `batchMaxRecords`), so batches are full under load and small when messages trickle in.
   */
  private async pump(messages: ConsumerMessages, out: SourceOutput): Promise<void> {
    const max = this.ctx.batchMaxRecords;
    let queue: JsMsg[] = [];
    let ended = false;
    let wake: (() => void) | undefined;
    let room: (() => void) | undefined;
    const reader = (async () => {
      for await (const msg of messages) {
        // After a stop, what the client had fetched goes back to the server for the other processes.
        if (out.stopping.aborted) {
          msg.nak();
          continue;
        }
        queue.push(msg);
        wake?.();
        if (queue.length >= max) await new Promise<void>((resolve) => (room = resolve));
      }
    })().finally(() => {
      ended = true;
      wake?.();
    });
    while (true) {
      if (queue.length === 0) {
        if (ended) break;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      // Let the messages already received reach the queue before cutting the batch.
      await new Promise((resolve) => setImmediate(resolve));
      const batch = queue.length <= max ? queue : queue.slice(0, max);
      queue = queue.length <= max ? [] : queue.slice(max);
      room?.();
      room = undefined;
      if (out.stopping.aborted) {
        for (const msg of batch) msg.nak();
        continue;
      }
      await this.emit(batch, out);
    }
    await reader;
  }

  private async emit(batch: JsMsg[], out: SourceOutput): Promise<void> {
    const records: EtlRecord[] = new Array(batch.length);
    const source = this.ctx.id;
    const file = `nats:${this.options.stream}`;
    let bytes = 0;
    let redelivered = 0;
    for (let i = 0; i < batch.length; i++) {
      const msg = batch[i] as JsMsg;
      const data = msg.data;
      bytes += data.length;
      const info = msg.info;
      if (info.deliveryCount > 1) redelivered++;
      const seq = info.streamSequence;
      if (seq > this.lastSequence) this.lastSequence = seq;
      const origin = { source, file, sequence: seq, subject: msg.subject, deliveries: info.deliveryCount };
      // A payload that is not UTF-8 keeps its bytes, as the file source does for such a line.
      records[i] = isUtf8(data)
        ? { message: decoder.decode(data), [ORIGIN]: origin }
        : {
            message: decoder.decode(data),
            message_base64: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64'),
            [ORIGIN]: origin,
          };
    }
    if (redelivered > 0) this.redelivered.inc(redelivered);
    const position: NatsPosition = {
      stream: this.options.stream,
      consumer: this.options.consumer,
      last_sequence: this.lastSequence,
    };
    const held: Held = { messages: batch, touchedAt: Date.now() };
    this.held.add(held);
    const emitted = await out.emit(records, position, bytes);
    const settled = emitted.durable().then(
      () => {
        for (const msg of batch) msg.ack();
        this.acked.inc(batch.length);
      },
      () => {
        // Not in a committed checkpoint (the run stopped or failed first): the server delivers them again.
        for (const msg of batch) msg.nak();
      },
    );
    const done = settled.finally(() => {
      this.held.delete(held);
      this.settling.delete(done);
    });
    this.settling.add(done);
  }

  /** Tells the server the messages waiting for a checkpoint are still being worked on. */
  private keepInProgress(ackWaitMs: number): void {
    const now = Date.now();
    for (const held of this.held) {
      if (now - held.touchedAt < ackWaitMs / 4) continue;
      for (const msg of held.messages) msg.working();
      held.touchedAt = now;
    }
  }

  /** The durable consumer, created when asked; refused when its acks could touch other processes' messages. */
  private async consumer(nc: NatsConnection): Promise<Consumer> {
    const { stream, consumer: name } = this.options;
    const jsm = await jetstreamManager(nc);
    await this.requireStream(jsm);
    let info = await jsm.consumers.info(stream, name).catch((error: unknown) => {
      if (isNotFound(error)) return undefined;
      throw error;
    });
    if (info === undefined) {
      if (!this.options.create_consumer) {
        throw new Error(
          `JetStream consumer ${name} does not exist on stream ${stream}; create it (nats consumer add) or set create_consumer: true`,
        );
      }
      info = await jsm.consumers.add(stream, {
        durable_name: name,
        ack_policy: AckPolicy.Explicit,
        ack_wait: this.options.ack_wait_seconds * 1e9,
        max_ack_pending: this.options.max_ack_pending,
        deliver_policy: this.options.deliver === 'new' ? DeliverPolicy.New : DeliverPolicy.All,
        ...(this.options.filter_subject === undefined ? {} : { filter_subject: this.options.filter_subject }),
      });
      this.ctx.logger.info('JetStream consumer created', { stream, consumer: name });
    }
    if (info.config.ack_policy !== AckPolicy.Explicit) {
      // AckAll would acknowledge the messages other processes hold; AckNone loses what a crash was holding.
      throw new Error(
        `JetStream consumer ${name} on stream ${stream} has ack_policy ${info.config.ack_policy}; the nats source needs explicit acks`,
      );
    }
    if (info.config.deliver_subject) {
      throw new Error(
        `JetStream consumer ${name} on stream ${stream} is a push consumer; the nats source needs a pull consumer`,
      );
    }
    const maxAckPending = info.config.max_ack_pending ?? -1;
    if (maxAckPending > 0 && maxAckPending < 4 * this.ctx.batchMaxRecords) {
      // Messages stay unacknowledged until their checkpoint: a small bound stalls the source between checkpoints.
      this.ctx.logger.warn(
        `JetStream consumer ${name} allows ${maxAckPending} unacknowledged messages (max_ack_pending); ` +
          'messages are acknowledged once per checkpoint, so this bounds throughput to about that many per ' +
          "checkpoint interval: raise it (nats consumer edit) to several checkpoints' worth of messages",
      );
    }
    return jetstream(nc).consumers.get(stream, name);
  }

  private async requireStream(jsm: JetStreamManager): Promise<void> {
    try {
      await jsm.streams.info(this.options.stream);
    } catch (error) {
      if (isNotFound(error)) throw new Error(`JetStream stream ${this.options.stream} does not exist`);
      throw error;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // The runtime has settled every batch's durability by now: wait for the acks and naks to be sent (unless
    // the run is aborted: the server then delivers what was not acknowledged again).
    const signal = this.ctx.signal;
    if (!signal.aborted) {
      let onAbort: () => void = () => {};
      await Promise.race([
        Promise.allSettled([...this.settling]),
        new Promise<void>((resolve) => {
          onAbort = resolve;
          signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
      signal.removeEventListener('abort', onAbort);
    }
    const nc = this.nc;
    if (!nc || nc.isClosed()) return;
    try {
      await nc.flush();
    } finally {
      await nc.close();
    }
  }
}

function isNotFound(error: unknown): boolean {
  const e = error as { code?: unknown; api_error?: { err_code?: number }; message?: string } | undefined;
  const code = e?.api_error?.err_code;
  // 10014: consumer not found; 10059: stream not found.
  return code === 10014 || code === 10059 || /not found/i.test(e?.message ?? '');
}
