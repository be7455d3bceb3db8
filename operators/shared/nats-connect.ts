/** Opens the NATS connection of a `nats` source or sink: named after the stage, reconnecting without end. */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../../engine/operator.ts';
import type { NatsConnectionOptions } from './nats-options.ts';

export async function connectNats(
  options: NatsConnectionOptions,
  who: { readonly pipeline: string; readonly id: string; readonly logger: Logger },
): Promise<NatsConnection> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: [...options.servers],
      name: `etl ${who.pipeline}/${who.id} pid ${process.pid}`,
      timeout: options.connect_timeout_seconds * 1000,
      // Once connected, an outage is waited out: the pipeline pauses through backpressure meanwhile.
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      ...(options.user === undefined ? {} : { user: options.user }),
      ...(options.password === undefined ? {} : { pass: options.password }),
      ...(options.token === undefined ? {} : { token: options.token }),
    });
  } catch (error) {
    throw new Error(`cannot connect to NATS at ${options.servers.join(', ')}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  watchStatus(nc, who.logger);
  return nc;
}

/** Logs disconnections and reconnections, once each, for as long as the connection lives. */
function watchStatus(nc: NatsConnection, logger: Logger): void {
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') logger.warn('NATS connection lost; reconnecting', { server: status.server });
      else if (status.type === 'reconnect') logger.info('NATS connection restored', { server: status.server });
    }
  })().catch(() => {});
}
