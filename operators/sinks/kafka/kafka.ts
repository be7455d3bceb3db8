/**
 * The `kafka` sink: one idempotent producer; each batch is one `send` (compressed), resolved once the brokers have
 * acknowledged every message. A record that cannot become a message (no key field, no payload field, too large)
 * is dead-lettered before the send; when the brokers refuse a send for a reason that is the messages' own (a
 * record too large for the topic, a corrupt message), the batch is sent again record by record and those refused
 * are dead-lettered with the broker's reason. Anything else (no broker, no leader, a timeout) fails the write as
 * retriable: the runtime retries the batch with backoff.
 */
import { CompressionTypes, type Message, Partitioners, type Producer } from 'kafkajs';
import { EtlError, errorMessage } from '../../../engine/errors.ts';
import type { OperatorContext, Sink, SinkWriteContext } from '../../../engine/operator.ts';
import { type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import { kafkaClient } from '../../shared/kafka-connect.ts';
import { originKey } from '../../shared/origin-key.ts';
import { valueText } from '../../shared/template.ts';
import type { KafkaSinkOptions } from './schema.ts';

/** Kafka error types that are about the messages sent, not about the cluster: the same send would fail again. */
const MESSAGE_ERRORS = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'CORRUPT_MESSAGE',
  'INVALID_RECORD',
  'INVALID_TIMESTAMP',
]);

export function createKafkaSink(options: KafkaSinkOptions, ctx: OperatorContext): Sink {
  return new KafkaSink(options, ctx);
}

interface Outgoing {
  readonly record: EtlRecord;
  readonly message: Message;
}

/** Builds the message for a record, or says why there is none. Exported for the tests. */
export function toMessage(
  record: EtlRecord,
  options: Pick<KafkaSinkOptions, 'key_field' | 'payload_field' | 'max_message_bytes'>,
  pipeline: string,
  traceparent: string | undefined,
): Message | string {
  let key: string | undefined;
  if (options.key_field !== undefined) {
    const value = record[options.key_field];
    if (value === undefined || value === null)
      return `the record has no \`${options.key_field}\` to key the message by`;
    key = valueText(value);
  }
  let value: string;
  if (options.payload_field === undefined) {
    value = JSON.stringify(record, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  } else {
    const field = record[options.payload_field];
    if (field === undefined || field === null) return `the record has no \`${options.payload_field}\` to produce`;
    value = valueText(field);
  }
  const headers: Record<string, string> = {};
  if (traceparent !== undefined) headers.traceparent = traceparent;
  const origin = originKey(pipeline, record[ORIGIN]);
  if (origin !== undefined) headers['etl-origin'] = origin;
  let size = Buffer.byteLength(value) + (key === undefined ? 0 : Buffer.byteLength(key));
  for (const [name, text] of Object.entries(headers)) size += name.length + Buffer.byteLength(text);
  if (size > options.max_message_bytes) {
    return `the message would be ${size} bytes, above max_message_bytes (${options.max_message_bytes})`;
  }
  return { ...(key === undefined ? {} : { key }), value, headers };
}

/** The broker's error type of a failed send, when it names one. */
export function kafkaErrorType(error: unknown): string | undefined {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    const type = (e as { type?: unknown }).type;
    if (typeof type === 'string') return type;
    const inner = (e as { originalError?: { type?: unknown } }).originalError;
    if (typeof inner?.type === 'string') return inner.type;
  }
  return undefined;
}

class KafkaSink implements Sink {
  private readonly options: KafkaSinkOptions;
  private readonly ctx: OperatorContext;
  private producer: Producer | undefined;
  private closed = false;
  private readonly produced: { inc(value?: number): void };

  constructor(options: KafkaSinkOptions, ctx: OperatorContext) {
    this.options = options;
    this.ctx = ctx;
    this.produced = ctx.metrics.counter('etl_kafka_produced_messages_total', 'Messages the brokers acknowledged.');
  }

  async open(): Promise<void> {
    const producer = kafkaClient(this.options, this.ctx.logger).producer({
      idempotent: this.options.idempotent,
      // The idempotent producer keeps order with up to 5 requests in flight; kafkajs allows only 1 with it.
      ...(this.options.idempotent ? { maxInFlightRequests: 1 } : {}),
      allowAutoTopicCreation: false,
      // Named, so kafkajs does not warn that its default changed in 2.0: keys map to partitions as the Java client does.
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    await producer.connect();
    this.producer = producer;
  }

  async write(records: EtlRecord[], ctx: SinkWriteContext): Promise<void> {
    const producer = this.producer;
    if (!producer) throw new Error(`kafka sink ${this.ctx.id} used before open`);
    const outgoing: Outgoing[] = [];
    for (const record of records) {
      const message = toMessage(record, this.options, this.ctx.pipeline, ctx.traceparent);
      if (typeof message === 'string') ctx.deadLetter(record, message);
      else outgoing.push({ record, message });
    }
    if (outgoing.length === 0) return;
    try {
      await this.send(producer, outgoing);
      return;
    } catch (error) {
      if (!MESSAGE_ERRORS.has(kafkaErrorType(error) ?? '')) throw this.retriable(error);
    }
    // The brokers refused something in the batch for what it is: find which, one message at a time.
    for (const item of outgoing) {
      try {
        await this.send(producer, [item]);
      } catch (error) {
        if (!MESSAGE_ERRORS.has(kafkaErrorType(error) ?? '')) throw this.retriable(error);
        ctx.deadLetter(item.record, `Kafka refused the message: ${errorMessage(error)}`);
      }
    }
  }

  private async send(producer: Producer, items: readonly Outgoing[]): Promise<void> {
    await producer.send({
      topic: this.options.topic,
      acks: -1,
      timeout: this.options.timeout_seconds * 1000,
      compression: this.options.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None,
      messages: items.map((item) => item.message),
    });
    this.produced.inc(items.length);
  }

  private retriable(error: unknown): EtlError {
    return new EtlError('ETL_RUN_SINK_FAILED', `Kafka did not take the batch: ${errorMessage(error)}`, {
      retriable: true,
      cause: error,
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.producer?.disconnect();
  }
}
