/**
 * The `nats` sink: publishes each record to JetStream and resolves `write` once the stream has stored every one
 * (its PubAck). Publishes that fail for want of a server or a stream are tried again with backoff until they pass
 * (or `max_outage_seconds`); the `Nats-Msg-Id` makes a publish tried twice, or published again by a rerun after
 * a crash, one message in the stream (within its `duplicate_window`). A record the server refuses for itself
 * (too large, a subject no stream takes with `discard: new` full…) is dead-lettered with the server's reason.
 */
import { type JetStreamClient, jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { EtlError, errorMessage } from '../../../engine/errors.ts';
import type { OperatorContext, Sink, SinkWriteContext } from '../../../engine/operator.ts';
import { type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import { backoffDelay, sleep } from '../../../engine/retry.ts';
import { originKey } from '../../shared/origin-key.ts';
import { parseTemplate, type Template, valueText } from '../../shared/template.ts';
import { connectNats } from '../../shared/nats-connect.ts';
import type { NatsSinkOptions } from './schema.ts';

/** One record ready to publish. */
interface Outgoing {
  readonly record: EtlRecord;
  readonly subject: string;
  readonly payload: Uint8Array;
  readonly id: string | undefined;
}

type Outcome =
  | { readonly kind: 'stored'; readonly duplicate: boolean }
  | { readonly kind: 'refused'; readonly reason: string }
  | { readonly kind: 'retry' | 'fail'; readonly error: unknown };

/** Client errors that mean "no server or no stream answered now": the publish is tried again. */
const OUTAGE_ERRORS = new Set([
  'TimeoutError',
  'NoRespondersError',
  'ConnectionError',
  'ClosedConnectionError',
  'DrainingConnectionError',
  'RequestError',
]);

const RETRY = { max_attempts: Number.POSITIVE_INFINITY, initial_backoff_ms: 100, max_backoff_ms: 5000 };

const encoder = new TextEncoder();

export function createNatsSink(options: NatsSinkOptions, ctx: OperatorContext): Sink {
  return new NatsSink(options, ctx);
}

class NatsSink implements Sink {
  private readonly options: NatsSinkOptions;
  private readonly ctx: OperatorContext;
  private readonly subject: Template;
  private readonly messageId: Template | undefined;
  private nc: NatsConnection | undefined;
  private js: JetStreamClient | undefined;
  private warnedNoId = false;
  private closed = false;
  private readonly duplicates: { inc(value?: number): void };
  private readonly withoutId: { inc(value?: number): void };
  private readonly retries: { inc(value?: number): void };

  constructor(options: NatsSinkOptions, ctx: OperatorContext) {
    this.options = options;
    this.ctx = ctx;
    this.subject = parseTemplate(options.subject);
    this.messageId = options.message_id === undefined ? undefined : parseTemplate(options.message_id);
    this.duplicates = ctx.metrics.counter(
      'etl_nats_duplicate_publishes_total',
      'Publishes the stream recognised by their message id as already stored (a retry, or a rerun after a crash).',
    );
    this.withoutId = ctx.metrics.counter(
      'etl_nats_published_without_id_total',
      'Records published without a message id (no `message_id` and no origin): not de-duplicated on a rerun.',
    );
    this.retries = ctx.metrics.counter(
      'etl_nats_publish_retries_total',
      'Publishes tried again after a timeout or with no server or stream answering.',
    );
  }

  async open(): Promise<void> {
    this.nc = await connectNats(this.options, this.ctx);
    this.js = jetstream(this.nc);
  }

  async write(records: EtlRecord[], ctx: SinkWriteContext): Promise<void> {
    const js = this.js;
    if (!js) throw new Error(`nats sink ${this.ctx.id} used before open`);
    let pending: Outgoing[] = [];
    for (const record of records) {
      const outgoing = this.prepare(record);
      if (typeof outgoing === 'string') ctx.deadLetter(record, outgoing);
      else pending.push(outgoing);
    }
    const outageSince = Date.now();
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt > 0) {
        this.retries.inc(pending.length);
        const limit = this.options.max_outage_seconds;
        if (limit !== undefined && Date.now() - outageSince > limit * 1000) {
          throw new EtlError(
            'ETL_RUN_SINK_FAILED',
            `NATS has not stored ${pending.length} publishes for ${limit} s (max_outage_seconds)`,
          );
        }
        await sleep(backoffDelay(attempt - 1, RETRY), this.ctx.signal);
      }
      const outcomes = await this.publishAll(js, pending);
      const again: Outgoing[] = [];
      let lastError: unknown;
      for (let i = 0; i < pending.length; i++) {
        const item = pending[i] as Outgoing;
        const outcome = outcomes[i] as Outcome;
        if (outcome.kind === 'stored') {
          if (outcome.duplicate) this.duplicates.inc();
        } else if (outcome.kind === 'refused') {
          ctx.deadLetter(item.record, outcome.reason);
        } else if (outcome.kind === 'fail') {
          // Not an outage: the runtime's policy decides. What was stored is de-duplicated when the batch is tried again.
          throw outcome.error;
        } else {
          again.push(item);
          lastError = outcome.error;
        }
      }
      if (again.length > 0 && attempt % 10 === 0) {
        this.ctx.logger.warn(
          `NATS did not store ${again.length} publishes (to ${again[0]?.subject}, …); is a stream bound to the subject? ` +
            `trying again: ${errorMessage(lastError)}`,
        );
      }
      pending = again;
    }
  }

  /** Publishes `items` with at most `max_pending_publishes` awaiting their acknowledgement; one outcome per item. */
  private async publishAll(js: JetStreamClient, items: readonly Outgoing[]): Promise<Outcome[]> {
    const outcomes: Outcome[] = new Array(items.length);
    const timeout = this.options.publish_timeout_seconds * 1000;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < items.length) {
        const i = next++;
        const item = items[i] as Outgoing;
        try {
          const ack = await js.publish(item.subject, item.payload, {
            timeout,
            ...(item.id === undefined ? {} : { msgID: item.id }),
          });
          outcomes[i] = { kind: 'stored', duplicate: ack.duplicate };
        } catch (error) {
          outcomes[i] = classify(error);
        }
      }
    };
    const workers: Promise<void>[] = [];
    for (let w = 0; w < Math.min(this.options.max_pending_publishes, items.length); w++) workers.push(worker());
    await Promise.all(workers);
    return outcomes;
  }

  /** The message for `record`, or why it cannot be published. */
  private prepare(record: EtlRecord): Outgoing | string {
    const subject = this.subject.render(record);
    if ('missing' in subject) return `the subject template needs \`${subject.missing}\`, which the record lacks`;
    if (!validSubject(subject.key)) return `\`${subject.key}\` is not a subject to publish to`;
    let payload: Uint8Array;
    const field = this.options.payload_field;
    if (field === undefined) {
      payload = encoder.encode(json(record));
    } else {
      const value = record[field];
      if (value === undefined || value === null) return `the record has no \`${field}\` to publish`;
      payload = encoder.encode(valueText(value));
    }
    let id: string | undefined;
    if (this.messageId !== undefined) {
      const rendered = this.messageId.render(record);
      if ('missing' in rendered) return `the message_id template needs \`${rendered.missing}\`, which the record lacks`;
      id = rendered.key;
    } else {
      id = this.originId(record);
    }
    return { record, subject: subject.key, payload, id };
  }

  /** An id the same each time the same input is read again: where in the input the record came from. */
  private originId(record: EtlRecord): string | undefined {
    const key = originKey(this.ctx.pipeline, record[ORIGIN]);
    if (key === undefined) {
      this.withoutId.inc();
      if (!this.warnedNoId) {
        this.warnedNoId = true;
        this.ctx.logger.warn(
          'records without an origin are published without a message id, so a rerun may publish them again; set message_id',
        );
      }
    }
    return key;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const nc = this.nc;
    if (!nc || nc.isClosed()) return;
    await nc.close();
  }
}

function classify(error: unknown): Outcome {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (OUTAGE_ERRORS.has(e.name)) return { kind: 'retry', error };
  }
  // The stream's own answer about this message (JetStreamApiError, an invalid subject): it would say so again.
  const name = error instanceof Error ? error.name : '';
  if (name === 'JetStreamApiError' || name === 'InvalidSubjectError' || name === 'JetStreamError') {
    return { kind: 'refused', reason: `NATS refused the message: ${errorMessage(error)}` };
  }
  return { kind: 'fail', error };
}

/** A subject a message can be published to: non-empty tokens without white space or wildcards. */
function validSubject(subject: string): boolean {
  if (subject.length === 0) return false;
  for (const token of subject.split('.')) {
    if (token.length === 0 || token === '*' || token === '>' || /\s/.test(token)) return false;
  }
  return true;
}

function json(record: EtlRecord): string {
  return JSON.stringify(record, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value));
}
