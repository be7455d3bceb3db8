/**
 * The shared Redis client. Opening tries again while the server refuses connections (one still starting, as in a
 * compose stack) and fails once `connect_timeout_seconds` have passed (a wrong URL should not wait forever); once
 * open, ioredis reconnects on its own and commands wait while it does, which the stages see as backpressure.
 */
import { Redis } from 'ioredis';
import { EtlError } from '../../../engine/errors.ts';
import type { OpenResource, ResourceContext } from '../../../engine/operator.ts';
import type { RedisResourceOptions } from './schema.ts';

export async function openRedis(options: RedisResourceOptions, ctx: ResourceContext): Promise<OpenResource<Redis>> {
  let opened = false;
  let lastError: Error | undefined;
  const client = new Redis(options.url, {
    lazyConnect: true,
    keyPrefix: options.key_prefix,
    connectTimeout: options.connect_timeout_seconds * 1000,
    // Commands queue while the connection is being re-established, however long: no command is lost.
    maxRetriesPerRequest: null,
    // Until it is open, the attempts below are ours (bounded by connect_timeout_seconds); then ioredis's own.
    retryStrategy: (times) => (opened ? Math.min(times * 100, 2000) : null),
    connectionName: `etl ${ctx.pipeline}/${ctx.name}`,
  });
  client.on('error', (error: Error) => {
    lastError = error;
    if (opened) ctx.logger.warn(`redis ${ctx.name}: ${error.message}`);
  });
  const deadline = Date.now() + options.connect_timeout_seconds * 1000;
  for (let pause = 100; ; pause = Math.min(pause * 2, 1000)) {
    try {
      await withTimeout(client.connect(), Math.max(1, deadline - Date.now()));
      break;
    } catch (error) {
      if (Date.now() + pause >= deadline || ctx.signal.aborted) {
        client.disconnect();
        // `Connection is closed` says less than the socket's own error (`connect ECONNREFUSED 127.0.0.1:6390`).
        const reason = (lastError ?? (error as Error)).message;
        throw new EtlError(
          'ETL_RESOURCE_UNAVAILABLE',
          `resource ${ctx.name}: cannot reach Redis at ${masked(options.url)} within ${options.connect_timeout_seconds} s: ${reason}`,
          { cause: error },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
  opened = true;
  let closed = false;
  return {
    client,
    async health() {
      try {
        return { ok: (await client.ping()) === 'PONG' };
      } catch (error) {
        return { ok: false, detail: (error as Error).message };
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await client.quit().catch(() => client.disconnect());
    },
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** The URL without its password. */
function masked(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}
