/**
 * The kafka sink: the message made of each record (key, payload, headers, size) as units; against a real broker,
 * gated on KAFKA_BROKERS (skipped without one), what a consumer reads back.
 */
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import type { Sink, SinkWriteContext } from '../../../engine/operator.ts';
import { type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import { recordingContext } from '../../../test/support/context.ts';
import definition from './index.ts';
import { kafkaErrorType, toMessage } from './kafka.ts';
import type { KafkaSinkOptions } from './schema.ts';

const BROKERS = process.env.KAFKA_BROKERS;
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const record = (patch: Partial<EtlRecord> = {}): EtlRecord => ({
  client_ip: '10.0.0.7',
  path: '/x',
  status: 200,
  [ORIGIN]: { source: 'queue', file: 'kafka:logs/3', sequence: 42, subject: 'logs' },
  ...patch,
});
const limits = { max_message_bytes: 1000 };

describe('kafka sink messages', () => {
  it('keys by a field, carries the trace context and the origin in headers', () => {
    expect(toMessage(record(), { ...limits, key_field: 'client_ip' }, 'p', TRACEPARENT)).toEqual({
      key: '10.0.0.7',
      value: '{"client_ip":"10.0.0.7","path":"/x","status":200}',
      headers: { traceparent: TRACEPARENT, 'etl-origin': 'p/queue/kafka:logs/3/42/' },
    });
    expect(toMessage(record(), { ...limits, key_field: 'status', payload_field: 'path' }, 'p', undefined)).toEqual({
      key: '200',
      value: '/x',
      headers: { 'etl-origin': 'p/queue/kafka:logs/3/42/' },
    });
  });

  it('says why a record makes no message: no key, no payload, too large', () => {
    expect(toMessage(record({ client_ip: null }), { ...limits, key_field: 'client_ip' }, 'p', undefined)).toBe(
      'the record has no `client_ip` to key the message by',
    );
    expect(toMessage(record(), { ...limits, payload_field: 'body' }, 'p', undefined)).toBe(
      'the record has no `body` to produce',
    );
    expect(toMessage(record({ path: 'x'.repeat(2000) }), limits, 'p', undefined)).toMatch(/above max_message_bytes/);
  });

  it('finds the broker error type on kafkajs errors and their causes', () => {
    const inner = Object.assign(new Error('too large'), { type: 'MESSAGE_TOO_LARGE' });
    expect(kafkaErrorType(Object.assign(new Error('retries exhausted'), { originalError: inner }))).toBe(
      'MESSAGE_TOO_LARGE',
    );
    expect(kafkaErrorType(new Error('x', { cause: inner }))).toBe('MESSAGE_TOO_LARGE');
    expect(kafkaErrorType(new Error('no type'))).toBeUndefined();
  });
});

const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

describe.skipIf(BROKERS === undefined)(
  'kafka sink against a real broker (needs KAFKA_BROKERS; skipped without)',
  () => {
    it('produces keyed, compressed messages with headers, and dead-letters what makes no message', async () => {
      const brokers = (BROKERS as string).split(',');
      const kafka = new Kafka({ brokers, clientId: 'etl-test', logLevel: logLevel.NOTHING });
      const topic = `etl-sink-${randomBytes(4).toString('hex')}`;
      // Creates the topic (a broker that creates topics on first use), so the sink finds it.
      const setup = kafka.producer({ allowAutoTopicCreation: true });
      await setup.connect();
      await setup.send({ topic, messages: [{ value: 'first' }] });
      await setup.disconnect();

      const options = {
        ...(definition.examples[0] as KafkaSinkOptions),
        brokers,
        topic,
        key_field: 'client_ip',
        // The librdkafka mock cluster (kcat) hands out no producer ids to kafkajs: KAFKA_TEST_IDEMPOTENT=false there.
        idempotent: process.env.KAFKA_TEST_IDEMPOTENT !== 'false',
      } satisfies KafkaSinkOptions;
      const sink: Sink = await definition.create(options, recordingContext({ pipeline: 'p', id: 'out' }));
      cleanups.push(() => sink.close?.());
      await sink.open?.();
      const dead: Array<{ record: EtlRecord; reason: string }> = [];
      const ctx: SinkWriteContext = {
        deadLetter: (r, reason) => dead.push({ record: r, reason }),
        traceparent: TRACEPARENT,
      };
      const records = Array.from({ length: 50 }, (_, i) =>
        record({
          client_ip: i === 7 ? null : `10.0.0.${i % 5}`,
          path: `/p${i}`,
          [ORIGIN]: { source: 's', sequence: i },
        }),
      );
      await sink.write(records, ctx);
      expect(dead.map((d) => d.reason)).toEqual(['the record has no `client_ip` to key the message by']);

      const consumer = kafka.consumer({ groupId: `${topic}-check` });
      await consumer.connect();
      cleanups.push(() => consumer.disconnect());
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      const got: Array<{ key: string; value: string; traceparent: string; origin: string; partition: number }> = [];
      const all = new Promise<void>((resolve) => {
        void consumer.run({
          eachMessage: async ({ message, partition }) => {
            if (message.value?.toString() === 'first') return;
            got.push({
              key: message.key?.toString() ?? '',
              value: message.value?.toString() ?? '',
              traceparent: message.headers?.traceparent?.toString() ?? '',
              origin: message.headers?.['etl-origin']?.toString() ?? '',
              partition,
            });
            if (got.length === 49) resolve();
          },
        });
      });
      await all;
      expect(new Set(got.map((m) => m.traceparent))).toEqual(new Set([TRACEPARENT]));
      expect(got.find((m) => m.value.includes('"/p3"'))).toMatchObject({ key: '10.0.0.3', origin: 'p/s//3/' });
      // One key, one partition: the order of a key's records is kept.
      for (const key of new Set(got.map((m) => m.key))) {
        expect(new Set(got.filter((m) => m.key === key).map((m) => m.partition)).size).toBe(1);
      }
    });
  },
);
