/**
 * The shared Redis client. Opening fails fast when the server cannot be reached within
 * `connect_timeout_seconds` (a wrong URL should not wait forever); once open, ioredis reconnects on its
 * own and commands wait while it does, which the stages see as backpressure.
 */
import { Redis } from 'ioredis';
import { EtlError } from '../../../engine/errors.ts';
import type { OpenResource, ResourceContext } from '../../../engine/operator.ts';
import type { RedisResourceOptions } from './schema.ts';

export async function openRedis(options: RedisResourceOptions, ctx: ResourceContext): Promise<OpenResource<Redis>> {
  const client = new Redis(options.url, {
    lazyConnect: true,
    keyPrefix: options.key_prefix,
    connectTimeout: options.connect_timeout_seconds * 1000,
    // Commands queue while the connection is being re-established, however long: no command is lost.
    maxRetriesPerRequest: null,
    connectionName: `etl ${ctx.pipeline}/${ctx.name}`,
  });
  client.on('error', (error: Error) => ctx.logger.warn(`redis ${ctx.name}: ${error.message}`));
  try {
    await withTimeout(client.connect(), options.connect_timeout_seconds * 1000);
  } catch (error) {
    client.disconnect();
    throw new EtlError(
      'ETL_RESOURCE_UNAVAILABLE',
      `resource ${ctx.name}: cannot reach Redis at ${masked(options.url)}: ${(error as Error).message}`,
      { cause: error },
    );
  }
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
