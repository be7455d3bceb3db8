/**
 * The http source: its own Fastify server with the ingest route (route.ts), feeding the pipeline through the
 * intake (intake.ts). It listens when `run` starts (downstream is wired by then; `create` binds nothing, so
 * `etl validate` and a definition's checks never take a port); a port already taken fails the run at once.
 *
 * Stopping: new requests are answered 503 with Retry-After, waiting ones too; requests already sent downstream
 * are answered once the final checkpoint has committed (200) or the run has ended without it (500); `close`
 * waits for those answers, then closes the server.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import type { Source, SourceContext, SourceOutput } from '../../../engine/operator.ts';
import { Intake } from './intake.ts';
import { registerIngestRoute } from './route.ts';
import type { HttpSourceOptions } from './schema.ts';

/** A request id a client may choose (`X-Request-Id`): short and plain, as it ends up in every record's origin. */
const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export interface HttpSource extends Source {
  /** Resolves with the address once the server listens (the port chosen when `listen` asked for port 0). */
  readonly listening: Promise<AddressInfo>;
  /** Requests read and waiting for credit. */
  readonly waiting: number;
  /** Requests admitted whose body is being read. */
  readonly beingRead: number;
  close(): Promise<void>;
}

export async function createHttpSource(options: HttpSourceOptions, ctx: SourceContext): Promise<HttpSource> {
  const waiting = ctx.metrics.gauge('etl_http_source_waiting_requests', 'Requests read and waiting for credit');
  const intake = new Intake({
    maxWaiting: options.max_waiting_requests,
    maxWaitMs: options.max_wait_ms,
    batchMaxRecords: ctx.batchMaxRecords,
    onWaiting: (n) => waiting.set(n),
  });
  const answers = new Map<number, { inc(value?: number): void }>();
  const app = Fastify({
    logger: false,
    requestIdHeader: false,
    genReqId: (req: IncomingMessage) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && CLIENT_REQUEST_ID.test(given) ? given : randomUUID();
    },
    bodyLimit: options.max_body_bytes,
    forceCloseConnections: 'idle',
  });
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  registerIngestRoute(app, intake, {
    stage: ctx.id,
    path: options.path,
    apiKey: options.api_key,
    records: options.records,
    maxBodyBytes: options.max_body_bytes,
    retryAfterSeconds: options.retry_after_seconds,
    onAnswer: (status) => {
      let counter = answers.get(status);
      if (!counter) {
        counter = ctx.metrics.counter('etl_http_source_requests_total', 'Requests answered, by status', {
          status: String(status),
        });
        answers.set(status, counter);
      }
      counter.inc();
    },
  });
  const { host, port } = splitListen(options.listen);
  let listened!: (address: AddressInfo) => void;
  let notListening!: (error: Error) => void;
  const listening = new Promise<AddressInfo>((resolve, reject) => {
    listened = resolve;
    notListening = reject;
  });
  // Nobody may be waiting for it; the run reports the failure.
  listening.catch(() => {});

  let closing: Promise<void> | undefined;
  return {
    listening,
    get waiting() {
      return intake.waiting;
    },
    get beingRead() {
      return intake.beingRead;
    },
    async run(out: SourceOutput): Promise<void> {
      try {
        await app.listen({ host, port });
      } catch (error) {
        const failure = new Error(`cannot listen on ${options.listen}: ${(error as Error).message}`);
        notListening(failure);
        throw failure;
      }
      const address = app.server.address() as AddressInfo;
      ctx.logger.info(`listening on http://${formatHost(address)}${options.path}`);
      listened(address);
      await intake.run(out);
    },
    close(): Promise<void> {
      closing ??= (async () => {
        intake.close('the source is stopping');
        // Requests sent downstream are answered once the run has settled their durability (it has by now,
        // unless the run is aborted: then the connections are cut).
        const onAbort = () => app.server.closeAllConnections();
        ctx.signal.addEventListener('abort', onAbort, { once: true });
        try {
          await Promise.race([intake.settled(), aborted(ctx.signal)]);
          await app.close();
        } finally {
          ctx.signal.removeEventListener('abort', onAbort);
        }
      })();
      return closing;
    },
  };
}

function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/** `host:port` or `[v6]:port` as the schema allows. */
export function splitListen(listen: string): { host: string; port: number } {
  const at = listen.lastIndexOf(':');
  const host = listen.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(listen.slice(at + 1)) };
}

function formatHost(address: AddressInfo): string {
  return address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`;
}
