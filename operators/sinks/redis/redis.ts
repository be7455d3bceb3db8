/**
 * The redis sink: one MULTI/EXEC per batch (pipelined: one round trip), so that a batch whose connection
 * drops before EXEC leaves nothing behind and its retry writes it whole. The shared client queues commands
 * while it reconnects, so an outage holds `write`, and with it the pipeline (backpressure), until Redis is
 * back; nothing acknowledged is dropped.
 */
import type { ChainableCommander, Redis } from 'ioredis';
import { EtlError, errorMessage } from '../../../engine/errors.ts';
import type { OperatorContext, Sink, SinkWriteContext } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import type { RedisSinkOptions } from './schema.ts';
import { parseTemplate, type Template, valueText } from '../../shared/template.ts';

export function createRedisSink(options: RedisSinkOptions, ctx: OperatorContext): Sink {
  const key = parseTemplate(options.key, options.key_escape);
  const member = options.member === undefined ? undefined : parseTemplate(options.member, options.key_escape);
  const ttlMs = options.ttl_seconds === undefined ? undefined : Math.max(1, Math.round(options.ttl_seconds * 1000));
  let client: Redis | undefined;
  // Channels are no keys: ioredis does not prefix them, the sink does, so that key_prefix separates them too.
  let channelPrefix = '';

  /** Queues the commands for one record; a reason when the record cannot be written. */
  const add = (multi: ChainableCommander, record: EtlRecord): string | undefined => {
    const target = key.render(record);
    if ('missing' in target) return `the key template needs \`${target.missing}\`, which the record lacks`;
    switch (options.mode) {
      case 'stream':
      case 'hash': {
        const pairs = fieldPairs(record, options.fields);
        if (pairs.length === 0) return 'the record has no field with a value to write';
        if (options.mode === 'stream') multi.xadd(target.key, 'MAXLEN', '~', options.max_len, '*', ...pairs);
        else multi.hset(target.key, ...pairs);
        break;
      }
      case 'zincrby': {
        const name = (member as Template).render(record);
        if ('missing' in name) return `the member template needs \`${name.missing}\`, which the record lacks`;
        let by = 1;
        if (options.increment_field !== undefined) {
          by = Number(record[options.increment_field]);
          if (!Number.isFinite(by)) return `\`${options.increment_field}\` is not a number`;
        }
        multi.zincrby(target.key, by, name.key);
        break;
      }
      case 'publish':
        multi.publish(channelPrefix + target.key, json(record));
        return undefined;
    }
    if (ttlMs !== undefined) multi.pexpire(target.key, ttlMs);
    return undefined;
  };

  return {
    async open() {
      client = ctx.resource<Redis>(options.redis);
      channelPrefix = client.options.keyPrefix ?? '';
    },
    async write(records: EtlRecord[], out: SinkWriteContext) {
      const multi = (client as Redis).multi();
      // Which records the replies belong to: each record's commands, in order.
      const owners: EtlRecord[] = [];
      for (const record of records) {
        const before = multi.length;
        const refused = add(multi, record);
        if (refused !== undefined) {
          out.deadLetter(record, refused);
          continue;
        }
        for (let i = before; i < multi.length; i++) owners.push(record);
      }
      if (owners.length === 0) return;
      const timer = setTimeout(
        () =>
          ctx.logger.warn(
            `redis sink ${ctx.id}: Redis has not answered for ${options.warn_after_seconds} s; the pipeline waits`,
          ),
        options.warn_after_seconds * 1000,
      );
      let replies: [Error | null, unknown][] | null;
      try {
        replies = await multi.exec();
      } catch (error) {
        // EXEC refused as a whole (EXECABORT: nothing applied), or a connection lost with EXEC unanswered
        // (applied or not): the batch is retried, which may write it twice (at least once, see README).
        throw new EtlError('ETL_RUN_SINK_FAILED', `redis sink ${ctx.id}: ${errorMessage(error)}`, {
          retriable: true,
          cause: error,
        });
      } finally {
        clearTimeout(timer);
      }
      if (replies === null) {
        throw new EtlError('ETL_RUN_SINK_FAILED', `redis sink ${ctx.id}: the transaction was aborted`, {
          retriable: true,
        });
      }
      // A command refused inside the transaction (WRONGTYPE: the key holds another type) refuses its record;
      // the others are written (Redis does not roll back).
      const refused = new Set<EtlRecord>();
      replies.forEach(([error], i) => {
        const record = owners[i] as EtlRecord;
        if (error && !refused.has(record)) {
          refused.add(record);
          out.deadLetter(record, `Redis refused it: ${error.message}`);
        }
      });
    },
  };
}

/** The field/value pairs to write: `fields` or every field, those with a value. */
function fieldPairs(record: EtlRecord, fields: readonly string[] | undefined): string[] {
  const pairs: string[] = [];
  for (const name of fields ?? Object.keys(record)) {
    const value = record[name];
    if (value === undefined || value === null) continue;
    pairs.push(name, valueText(value));
  }
  return pairs;
}

function json(record: EtlRecord): string {
  return JSON.stringify(record, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}
