/**
 * The `kafka` source: a consumer-group member. Each partition's position is its next offset, emitted with the
 * batch and recorded by the checkpoint that follows it once every sink has acknowledged it. With a sink downstream
 * that stores partitioned positions (PostgreSQL), the source claims each partition it is assigned there and
 * resumes from the offset committed with the rows, whichever instance committed it; a revoked owner's late commit
 * is fenced (engine/operator.ts, "Partitioned positions"). Offsets of committed checkpoints are committed to Kafka
 * too, for lag tooling, and are where a partition starts when no sink stores positions (at least once then).
 */
import { isUtf8 } from 'node:buffer';
import type { Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import { errorMessage } from '../../../engine/errors.ts';
import type { Source, SourceContext, SourceOutput } from '../../../engine/operator.ts';
import { type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import { kafkaClient } from '../../shared/kafka-connect.ts';
import { PartitionBook, type TopicPartition } from './book.ts';
import type { KafkaSourceOptions } from './schema.ts';

const decoder = new TextDecoder();

export function createKafkaSource(options: KafkaSourceOptions, ctx: SourceContext): Source {
  return new KafkaSource(options, ctx);
}

class KafkaSource implements Source {
  private readonly options: KafkaSourceOptions;
  private readonly ctx: SourceContext;
  private readonly book: PartitionBook;
  private consumer: Consumer | undefined;
  /** Emits one at a time, so that each position is the book as it stands when its batch is handed on. */
  private chain: Promise<unknown> = Promise.resolve();
  /** Claims under way, by partition key: a batch of the partition waits for its claim (and seek). */
  private readonly claims = new Map<string, Promise<void>>();
  /** Offset commits to Kafka and batch settlements under way, awaited at close. */
  private readonly settling = new Set<Promise<unknown>>();
  private readonly assigned: { set(value: number): void };
  private readonly skipped: { inc(value?: number): void };
  private closed = false;

  constructor(options: KafkaSourceOptions, ctx: SourceContext) {
    this.options = options;
    this.ctx = ctx;
    this.book = new PartitionBook(options.group_id);
    this.assigned = ctx.metrics.gauge('etl_kafka_assigned_partitions', 'Partitions assigned to this instance.');
    this.skipped = ctx.metrics.counter(
      'etl_kafka_skipped_messages_total',
      'Messages fetched below the position stored with the data (already loaded), not emitted again.',
    );
  }

  async run(out: SourceOutput): Promise<void> {
    const consumer = kafkaClient(this.options, this.ctx.logger).consumer({
      groupId: this.options.group_id,
      sessionTimeout: this.options.session_timeout_seconds * 1000,
      maxBytesPerPartition: this.options.max_bytes_per_partition,
    });
    this.consumer = consumer;
    let fail: (error: unknown) => void = () => {};
    const failed = new Promise<void>((_, reject) => {
      fail = reject;
    });
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      const assignment = Object.entries(payload.memberAssignment).flatMap(([topic, partitions]) =>
        partitions.map((partition) => ({ topic, partition })),
      );
      this.assigned.set(assignment.length);
      this.reassign(assignment, out, consumer).catch(fail);
    });
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (!payload.restart) fail(payload.error);
    });
    out.onCommitted((position) => this.commitToKafka(consumer, position));
    await consumer.connect();
    await consumer.subscribe({ topics: [...this.options.topics], fromBeginning: this.options.from_beginning });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: (payload) => this.eachBatch(payload, out),
    });
    await Promise.race([aborted(out.stopping), failed]);
    await consumer.stop();
  }

  /** A new assignment: claims the partitions it adds and seeks them; drops revoked ones with nothing in flight. */
  private async reassign(assignment: TopicPartition[], out: SourceOutput, consumer: Consumer): Promise<void> {
    const { added, dropped } = this.book.assign(assignment);
    if (dropped.length > 0) {
      this.ctx.logger.info('partitions revoked', { partitions: dropped });
      this.emitPosition(out);
    }
    if (added.length === 0) return;
    const store = this.ctx.partitions;
    const claiming = (async () => {
      const keys = added.map((tp) => this.book.key(tp.topic, tp.partition));
      const claims = store === undefined ? undefined : await store.claim(keys);
      const seeks = this.book.claimed(added, claims);
      for (const seek of seeks) consumer.seek(seek);
      this.ctx.logger.info('partitions assigned', {
        partitions: keys,
        ...(claims === undefined
          ? {}
          : { resumed_from: Object.fromEntries(seeks.map((s) => [`${s.topic}/${s.partition}`, s.offset])) }),
      });
    })();
    for (const tp of added) this.claims.set(this.book.key(tp.topic, tp.partition), claiming);
    await claiming;
  }

  private async eachBatch(payload: EachBatchPayload, out: SourceOutput): Promise<void> {
    const { batch, resolveOffset, heartbeat, isRunning, isStale } = payload;
    const key = this.book.key(batch.topic, batch.partition);
    await this.claims.get(key);
    if (out.stopping.aborted || !isRunning() || isStale() || !this.book.owns(key)) return;
    const next = this.book.nextOf(key);
    let messages: KafkaMessage[] = batch.messages;
    if (next !== undefined) {
      // Fetched before the seek to the stored position took effect: those rows are stored already.
      const from = BigInt(next);
      messages = messages.filter((m) => BigInt(m.offset) >= from);
      if (messages.length < batch.messages.length) this.skipped.inc(batch.messages.length - messages.length);
    }
    const max = this.ctx.batchMaxRecords;
    let start = 0;
    while (start < messages.length) {
      if (out.stopping.aborted || !isRunning() || isStale()) return;
      // One trace parent per batch: a run of messages with the same `traceparent` header, at most `max` of them.
      const parent = header(messages[start] as KafkaMessage, 'traceparent');
      let end = start + 1;
      while (
        end < messages.length &&
        end - start < max &&
        header(messages[end] as KafkaMessage, 'traceparent') === parent
      ) {
        end++;
      }
      await this.emit(out, batch.topic, batch.partition, messages.slice(start, end), parent);
      start = end;
    }
    resolveOffset(batch.lastOffset());
    await heartbeat();
  }

  private emit(
    out: SourceOutput,
    topic: string,
    partition: number,
    messages: KafkaMessage[],
    traceparent: string | undefined,
  ): Promise<void> {
    const key = this.book.key(topic, partition);
    const source = this.ctx.id;
    const file = `kafka:${topic}/${partition}`;
    const records: EtlRecord[] = new Array(messages.length);
    let bytes = 0;
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i] as KafkaMessage;
      const value = message.value ?? Buffer.alloc(0);
      bytes += value.length;
      const origin = { source, file, sequence: Number(message.offset), subject: topic };
      // A value that is not UTF-8 keeps its bytes, as the file source does for such a line.
      records[i] = isUtf8(value)
        ? { message: decoder.decode(value), [ORIGIN]: origin }
        : { message: decoder.decode(value), message_base64: value.toString('base64'), [ORIGIN]: origin };
    }
    const last = (messages[messages.length - 1] as KafkaMessage).offset;
    const step = this.chain.then(async () => {
      this.book.read(key, last);
      const emitted = await out.emit(
        records,
        this.book.position(),
        bytes,
        traceparent === undefined ? undefined : { traceparent },
      );
      // Durable: its position is committed with the data. Abandoned (the run stopped or failed first): the rows
      // were committed nowhere, and the partition's next owner (or the next run) reads them again.
      const settled = emitted
        .durable()
        .catch(() => {})
        .then(() => {
          if (this.book.settled(key)) this.emitPosition(out);
        });
      this.track(settled);
    });
    this.chain = step.catch(() => {});
    return step;
  }

  /** Moves the position without records: a revoked partition leaves it. */
  private emitPosition(out: SourceOutput): void {
    this.chain = this.chain.then(() => out.emit([], this.book.position())).catch(() => {});
  }

  private commitToKafka(consumer: Consumer, position: unknown): void {
    const offsets = this.book.commits(position);
    if (offsets.length === 0) return;
    // For lag tooling only: a commit refused after a rebalance is of no consequence, the new owner commits its own.
    this.track(
      consumer.commitOffsets(offsets.map((o) => ({ ...o }))).catch((error: unknown) => {
        this.ctx.logger.debug('offsets not committed to Kafka', { error: errorMessage(error) });
      }),
    );
  }

  private track(promise: Promise<unknown>): void {
    this.settling.add(promise);
    void promise.finally(() => this.settling.delete(promise));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.ctx.signal.aborted) await Promise.allSettled([...this.settling]);
    await this.consumer?.disconnect();
  }
}

function header(message: KafkaMessage, name: string): string | undefined {
  const value = message.headers?.[name];
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined ? undefined : first.toString();
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
