/**
 * The http source: its own Fastify server with the ingest route (route.ts), feeding the pipeline through the
 * intake (intake.ts). It listens when `run` starts (downstream is wired by then; `create` binds nothing, so
 * `etl validate` and a definition's checks never take a port); a port already taken fails the run at once.
 *
 * Stopping: new requests are answered 503 with Retry-After, waiting ones too; requests already sent downstream
 * are answered once the final checkpoint has committed (200) or the run has ended without it (500); `close`
 * waits for those answers, then closes the server.
 *
 * With `buffer` the intake is buffered-intake.ts: a request is answered once in the write-ahead log (wal.ts),
 * opened (and locked) before the server listens; stopping answers the appends under way, then closes the log.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import Fastify from 'fastify';
import type { Source, SourceContext, SourceOutput } from '../../../engine/operator.ts';
import { BufferedIntake } from './buffered-intake.ts';
import { Intake, type SourceIntake } from './intake.ts';
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
  const buffered = options.buffer === undefined ? undefined : bufferedIntake(options.buffer, options, ctx);
  const intake: SourceIntake =
    buffered ??
    new Intake({
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
      // The log first: a buffer another process holds fails the run before the port is taken.
      await buffered?.open();
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
          await intake.dispose?.();
        } finally {
          ctx.signal.removeEventListener('abort', onAbort);
        }
      })();
      return closing;
    },
  };
}

/** The intake of `buffer`: the log's directory resolves against the base directory, by default under `data_dir`. */
function bufferedIntake(
  buffer: NonNullable<HttpSourceOptions['buffer']>,
  options: HttpSourceOptions,
  ctx: SourceContext,
): BufferedIntake {
  const bytes = ctx.metrics.gauge('etl_http_source_buffer_bytes', 'Bytes the write-ahead buffer holds on disk');
  const groups = ctx.metrics.counter(
    'etl_http_source_buffer_writes_total',
    'Writes (each with one fsync) to the write-ahead buffer; each holds the requests that arrived meanwhile',
  );
  return new BufferedIntake({
    log: {
      dir: buffer.path === undefined ? join(ctx.dataDir, 'http-buffer', ctx.id) : resolve(ctx.baseDir, buffer.path),
      maxBytes: buffer.max_bytes,
      segmentBytes: buffer.segment_bytes,
      fsync: buffer.fsync,
      holder: `etl (pipeline ${ctx.pipeline}, source ${ctx.id})`,
      onGroup: () => groups.inc(),
      onTruncated: (file, at, dropped) =>
        ctx.logger.warn(`the write-ahead buffer's tail did not check out (a crash mid-write): truncated`, {
          file,
          at,
          dropped_bytes: dropped,
        }),
    },
    maxReading: options.max_waiting_requests,
    batchMaxRecords: ctx.batchMaxRecords,
    restoredPosition: ctx.restoredPosition,
    onBytes: (n) => bytes.set(n),
  });
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
