/**
 * The Elasticsearch/OpenSearch sink, on the official client's bulk API. A write is one bulk request (the runtime may
 * run several at once: the definition is `concurrent`); it is acknowledged once every item is indexed or
 * dead-lettered, which is durable at that point (the cluster's translog is synced per request by default), so the
 * sink needs no checkpoint phase of its own. Items answered 429 or 5xx go again, alone, with backoff; any other item
 * error dead-letters its record with the error. A request that fails whole (the cluster unreachable) fails the
 * write, which the runtime retries: with ids from the origin (the default) a replayed document overwrites itself.
 */
import { createHash } from 'node:crypto';
import { Client } from '@elastic/elasticsearch';
import type { OperatorContext, Sink, SinkWriteContext } from '../../../engine/operator.ts';
import { type EtlRecord, eventTimeOf, ORIGIN } from '../../../engine/record.ts';
import { backoffDelay, sleep } from '../../../engine/retry.ts';
import { originKey } from '../../shared/origin-key.ts';
import { parseTemplate, type Template } from '../../shared/template.ts';
import type { ElasticsearchSinkOptions } from './schema.ts';

interface Item {
  readonly record: EtlRecord;
  readonly index: string;
  readonly id: string | undefined;
}

/** An item error worth another try: the cluster was busy or failing, not the document wrong. */
const retriable = (status: number) => status === 429 || status >= 500;

export class ElasticsearchSink implements Sink {
  private readonly options: ElasticsearchSinkOptions;
  private readonly ctx: OperatorContext;
  private readonly index: Template;
  private client: Client | undefined;
  private readonly indexed: { inc(value?: number): void };
  private readonly retried: { inc(value?: number): void };

  constructor(options: ElasticsearchSinkOptions, ctx: OperatorContext) {
    this.options = options;
    this.ctx = ctx;
    this.index = parseTemplate(options.index);
    this.indexed = ctx.metrics.counter('etl_elasticsearch_indexed_total', 'Documents the cluster acknowledged');
    this.retried = ctx.metrics.counter(
      'etl_elasticsearch_item_retries_total',
      'Bulk items sent again after 429 or 5xx',
    );
  }

  async open(): Promise<void> {
    this.client = new Client({
      node: this.options.url,
      ...(this.options.api_key ? { auth: { apiKey: this.options.api_key } } : {}),
      requestTimeout: this.options.timeout_seconds * 1000,
      // Whole requests are retried by the runtime (the write fails), items here: the client retries nothing.
      maxRetries: 0,
      compression: true,
    });
  }

  async write(records: EtlRecord[], ctx: SinkWriteContext): Promise<void> {
    let pending: Item[] = [];
    for (const record of records) {
      const index = this.indexFor(record);
      if (typeof index !== 'string') ctx.deadLetter(record, index.reason);
      else pending.push({ record, index, id: this.idFor(record) });
    }
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt > 0) {
        this.retried.inc(pending.length);
        await sleep(
          backoffDelay(attempt - 1, { max_attempts: 0, initial_backoff_ms: 200, max_backoff_ms: 10_000 }),
          this.ctx.signal,
        );
      }
      const last = attempt + 1 >= this.options.max_attempts;
      pending = await this.bulk(pending, ctx, last);
    }
  }

  async close(): Promise<void> {
    await this.client?.close();
  }

  /** One bulk request of `items`; the items to send again. */
  private async bulk(items: Item[], ctx: SinkWriteContext, last: boolean): Promise<Item[]> {
    const client = this.client as Client;
    const action = this.options.data_stream ? 'create' : 'index';
    const operations: unknown[] = [];
    for (const item of items) {
      operations.push({ [action]: { _index: item.index, ...(item.id === undefined ? {} : { _id: item.id }) } });
      operations.push(item.record);
    }
    const response = await client.bulk({ operations, refresh: false });
    const again: Item[] = [];
    let ok = 0;
    response.items.forEach((entry, i) => {
      const item = items[i] as Item;
      const result = Object.values(entry)[0];
      const status = result?.status ?? 500;
      // `create` of a document already there: a replay of one indexed before.
      if (!result?.error || (action === 'create' && status === 409)) {
        ok++;
        return;
      }
      const error = `${result.error.type}: ${result.error.reason ?? ''}`.trim();
      if (retriable(status) && !last) again.push(item);
      else ctx.deadLetter(item.record, `elasticsearch refused the document (${status}) ${error}`);
    });
    this.indexed.inc(ok);
    if (again.length > 0) {
      this.ctx.logger.warn(
        `elasticsearch: ${again.length} of ${items.length} documents answered 429/5xx; sending them again`,
      );
    }
    return again;
  }

  private indexFor(record: EtlRecord): string | { reason: string } {
    const time = eventTimeOf(record[this.options.time_field]);
    const day = new Date(Number.isNaN(time) ? Date.now() : time).toISOString().slice(0, 10).replaceAll('-', '.');
    const rendered = this.index.render({ ...record, date: day, pipeline: this.ctx.pipeline });
    if ('missing' in rendered)
      return { reason: `the index template needs \`${rendered.missing}\`, which the record lacks` };
    // Index names are lower case, without spaces or \ / * ? " < > | , #.
    return rendered.key.toLowerCase().replace(/[\s\\/*?"<>|,#]+/g, '_');
  }

  private idFor(record: EtlRecord): string | undefined {
    const id = this.options.id;
    if (id === 'auto') return undefined;
    if (id !== 'origin') {
      const value = record[id];
      return value === undefined || value === null ? undefined : String(value);
    }
    // Without a locator (a line, an offset, a queue sequence) the origin does not tell records apart: the cluster
    // picks ids then (a replay adds duplicates), rather than records overwriting one another. Hashed: a file path
    // may be longer than an id may be.
    const key = originKey(this.ctx.pipeline, record[ORIGIN]);
    return key === undefined ? undefined : createHash('sha256').update(key).digest('base64url').slice(0, 32);
  }
}
