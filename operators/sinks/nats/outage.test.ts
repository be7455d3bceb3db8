/**
 * The nats sink through a server outage: a private nats-server (JetStream, its own store) is killed while a batch
 * is being published and started again; the write waits, tries again, and the stream holds every record once.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import type { EtlRecord } from '../../../engine/record.ts';
import { recordingContext } from '../../../test/support/context.ts';
import { ThrowawayNatsServer } from '../../../test/support/nats.ts';
import { createNatsSink } from './nats.ts';

let server: ThrowawayNatsServer;
afterAll(async () => {
  await server?.stop();
});

describe('nats sink during an outage', () => {
  it('waits for the server to come back and stores every record once', async () => {
    server = await ThrowawayNatsServer.start();
    const admin = await connect({ servers: server.url });
    await (await jetstreamManager(admin)).streams.add({ name: 'OUTAGE', subjects: ['outage.>'] });
    await admin.close();

    const ctx = recordingContext({ id: 'out' });
    const sink = createNatsSink(
      {
        servers: [server.url],
        connect_timeout_seconds: 5,
        subject: 'outage.{n}',
        message_id: '{n}',
        publish_timeout_seconds: 0.5,
        max_pending_publishes: 64,
      },
      ctx,
    );
    await sink.open?.();
    const records = (from: number, count: number): EtlRecord[] =>
      Array.from({ length: count }, (_, i) => ({ n: from + i }));
    await sink.write(records(0, 200), { deadLetter: () => expect.fail('no dead letter expected') });

    await server.kill();
    const writing = sink.write(records(200, 200), { deadLetter: () => expect.fail('no dead letter expected') });
    // The write waits while the server is down: it has retried at least once before the server is back.
    await ctx.logged('NATS did not store');
    await server.resume();
    await writing;
    expect(ctx.values.get('etl_nats_publish_retries_total')).toBeGreaterThan(0);
    await sink.close?.();

    const check = await connect({ servers: server.url });
    const info = await (await jetstreamManager(check)).streams.info('OUTAGE');
    await check.close();
    expect(info.state.messages).toBe(400);
  });
});
