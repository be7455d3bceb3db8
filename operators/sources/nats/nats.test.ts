/** The nats source through its contract, against the local JetStream: acks follow durability, naks its failure. */
import { AckPolicy } from '@nats-io/jetstream';
import { Ajv } from 'ajv';
import { afterAll, describe, expect, it } from 'vitest';
import type { Emitted, SourceContext, SourceOutput } from '../../../engine/operator.ts';
import { type EtlRecord, ORIGIN, type Origin } from '../../../engine/record.ts';
import { recordingContext } from '../../../test/support/context.ts';
import { NATS_URL, ThrowawayStream } from '../../../test/support/nats.ts';
import definition from './index.ts';
import { createNatsSource } from './nats.ts';
import type { NatsSourceOptions } from './schema.ts';

const ajv = new Ajv({ useDefaults: true, strict: false });
const validate = ajv.compile(definition.schema);

function options(patch: Record<string, unknown>): NatsSourceOptions {
  const value = { servers: [NATS_URL], ...structuredClone(patch) };
  if (!validate(value)) throw new Error(ajv.errorsText(validate.errors));
  return value as unknown as NatsSourceOptions;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function throwaway(): Promise<ThrowawayStream> {
  const stream = await ThrowawayStream.create('SRC');
  cleanups.push(() => stream.drop());
  return stream;
}

function sourceContext(batchMaxRecords = 100): SourceContext {
  return { ...recordingContext({ id: 'queue' }), restoredPosition: undefined, batchMaxRecords };
}

interface Batch {
  readonly records: EtlRecord[];
  readonly position: unknown;
  settle(ok: boolean): void;
}

/** A SourceOutput whose batches become durable (or fail to) when the test says so. */
function controlledOutput() {
  const stop = new AbortController();
  const batches: Batch[] = [];
  const waiters: Array<() => void> = [];
  const out: SourceOutput = {
    stopping: stop.signal,
    emit: async (records, position) => {
      let settle: (ok: boolean) => void = () => {};
      const durable = new Promise<void>((resolve, reject) => {
        settle = (ok) => (ok ? resolve() : reject(new Error('the run ended first')));
      });
      durable.catch(() => {});
      batches.push({ records, position, settle });
      for (const wake of waiters.splice(0)) wake();
      const emitted: Emitted = { sent: true, durable: () => durable };
      return emitted;
    },
    progress: () => {},
    onCommitted: () => {},
    inputError: (reason) => {
      throw new Error(reason);
    },
  };
  /** Resolves once `n` records have been emitted in all. */
  const emittedRecords = async (n: number): Promise<void> => {
    while (batches.reduce((sum, b) => sum + b.records.length, 0) < n) {
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
  return { out, stop, batches, emittedRecords };
}

async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 20));
}

describe('nats source definition', () => {
  it('warns of consumer settings it will not apply, and refuses a password without user', () => {
    const problems = (patch: Record<string, unknown>) =>
      definition.validate?.(options({ stream: 'S', consumer: 'c', ...patch }), { inputSchema: undefined }) ?? [];
    expect(problems({ filter_subject: 'a.>' }).map((p) => [p.severity, p.message])).toEqual([
      ['warning', 'filter_subject applies only when the source creates the consumer (create_consumer: true)'],
    ]);
    expect(problems({ filter_subject: 'a.>', create_consumer: true })).toEqual([]);
    expect(problems({ password: 'x' }).map((p) => p.message)).toEqual(['password without user']);
  });
});

describe('nats source', () => {
  it('refuses a missing stream or consumer, and a consumer whose acks are not explicit', async () => {
    const stream = await throwaway();
    const run = async (patch: Record<string, unknown>) => {
      const source = createNatsSource(options({ stream: stream.name, consumer: 'c', ...patch }), sourceContext());
      try {
        await source.run(controlledOutput().out);
      } finally {
        await source.close?.();
      }
    };
    await expect(run({ stream: 'NO_SUCH_STREAM' })).rejects.toThrow('JetStream stream NO_SUCH_STREAM does not exist');
    await expect(run({})).rejects.toThrow(`JetStream consumer c does not exist on stream ${stream.name}`);
    await stream.jsm.consumers.add(stream.name, { durable_name: 'all', ack_policy: AckPolicy.All });
    await expect(run({ consumer: 'all' })).rejects.toThrow('has ack_policy all; the nats source needs explicit acks');
  });

  it('acknowledges a batch once it is durable, hands back one that is not, and origins tell the redelivery', async () => {
    const stream = await throwaway();
    const source = createNatsSource(
      options({ stream: stream.name, consumer: 'c', create_consumer: true }),
      sourceContext(100),
    );
    cleanups.push(() => source.close?.());
    const { out, stop, batches, emittedRecords } = controlledOutput();
    const running = source.run(out);
    await stream.publish(['a', 'b', 'c'], 'one');
    await emittedRecords(3);
    // Emitted, not durable yet: delivered and unacknowledged.
    expect((await stream.consumer('c')).ackPending).toBe(3);
    for (const batch of batches) batch.settle(true);
    await until(async () => (await stream.consumer('c')).ackPending === 0);

    await stream.publish(['d', 'e'], 'two');
    await emittedRecords(5);
    const failed = batches.slice(-1)[0] as Batch;
    expect(failed.records.map((r) => r.message)).toEqual(['d', 'e']);
    // The run ended before their checkpoint: nak'ed, delivered again at once (not after ack_wait).
    failed.settle(false);
    await emittedRecords(7);
    const again = batches.slice(-1)[0] as Batch;
    expect(again.records.map((r) => [r.message, (r[ORIGIN] as Origin).deliveries])).toEqual([
      ['d', 2],
      ['e', 2],
    ]);
    const origin = again.records[0]?.[ORIGIN] as Origin;
    expect(origin).toEqual({
      source: 'queue',
      file: `nats:${stream.name}`,
      sequence: 4,
      subject: `${stream.subject}.two`,
      deliveries: 2,
    });
    expect(again.position).toEqual({ stream: stream.name, consumer: 'c', last_sequence: 5 });
    again.settle(true);
    stop.abort();
    await running;
    await source.close?.();
    expect(await stream.consumer('c')).toMatchObject({ ackPending: 0, pending: 0 });
  });

  it('keeps a payload that is not UTF-8 in message_base64', async () => {
    const stream = await throwaway();
    const source = createNatsSource(
      options({ stream: stream.name, consumer: 'c', create_consumer: true }),
      sourceContext(),
    );
    cleanups.push(() => source.close?.());
    const { out, stop, batches, emittedRecords } = controlledOutput();
    const running = source.run(out);
    await stream.js.publish(`${stream.subject}.bin`, Uint8Array.from([0x47, 0xff, 0x0a]));
    await emittedRecords(1);
    const record = batches[0]?.records[0] as EtlRecord;
    expect(record.message).toBe('G\uFFFD\n');
    expect(record.message_base64).toBe(Buffer.from([0x47, 0xff, 0x0a]).toString('base64'));
    batches[0]?.settle(true);
    stop.abort();
    await running;
    await source.close?.();
  });
});
