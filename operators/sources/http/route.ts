/**
 * The ingest route as a Fastify plugin, apart from any listener: the source registers it on a server of its own,
 * and a daemon serving many pipelines can register it on its server instead (under a prefix).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type Decoded, decodeJson, decodeLines, decodeNdjson, type RecordsMode, requestLocator } from './body.ts';
import type { Outcome, RequestIntake, TraceContext } from './intake.ts';
import { parseTraceparent } from './traceparent.ts';

export interface IngestRouteOptions {
  /** The source stage's id (`origin.source`). */
  readonly stage: string;
  readonly path: string;
  readonly apiKey: string | undefined;
  readonly records: RecordsMode;
  readonly maxBodyBytes: number;
  readonly retryAfterSeconds: number;
  /** Called with each answer's status (for metrics). */
  readonly onAnswer?: (status: number) => void;
}

/** A parsed body, tagged by how it was sent. */
type Body =
  | { readonly kind: 'lines'; readonly bytes: Buffer }
  | { readonly kind: 'ndjson'; readonly bytes: Buffer }
  | { readonly kind: 'json'; readonly value: unknown; readonly size: number };

const NDJSON_TYPES = ['application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/x-jsonlines'];

class HttpError extends Error {
  readonly statusCode: number;
  constructor(statusCode: number, message: string) {
    super(message);
    this.statusCode = statusCode;
  }
}

/** Registers POST `options.path` on `app` (in its own encapsulation context: the parsers and hooks stay there). */
export function registerIngestRoute(app: FastifyInstance, intake: RequestIntake, options: IngestRouteOptions): void {
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(
      'text/plain',
      { parseAs: 'buffer', bodyLimit: options.maxBodyBytes },
      (_req, body: Buffer, done) => done(null, { kind: 'lines', bytes: body } satisfies Body),
    );
    scope.addContentTypeParser(
      NDJSON_TYPES,
      { parseAs: 'buffer', bodyLimit: options.maxBodyBytes },
      (_req, body: Buffer, done) => done(null, { kind: 'ndjson', bytes: body } satisfies Body),
    );
    scope.addContentTypeParser(
      'application/json',
      { parseAs: 'buffer', bodyLimit: options.maxBodyBytes },
      (_req, body: Buffer, done) => {
        try {
          done(null, { kind: 'json', value: JSON.parse(body.toString('utf8')), size: body.length } satisfies Body);
        } catch (error) {
          done(new HttpError(400, `the body is not valid JSON: ${(error as Error).message}`), undefined);
        }
      },
    );

    const expectedKey = options.apiKey === undefined ? undefined : digest(options.apiKey);
    const admitted = new WeakSet<FastifyRequest>();
    const release = (request: FastifyRequest): void => {
      if (admitted.delete(request)) intake.release();
    };
    scope.addHook('onRequest', async (request, reply) => {
      if (expectedKey && !authorized(request.headers, expectedKey)) {
        reply.header('www-authenticate', 'Bearer realm="etl"');
        return answer(reply, 401, { error: 'a valid API key is required (Authorization: Bearer or X-API-Key)' });
      }
      // Refused before its body is read: saturation costs no memory.
      const refused = intake.admit();
      if (refused) return answer(reply.header('connection', 'close'), refused.status, body(refused, request.id));
      admitted.add(request);
      return undefined;
    });
    // A request that ends before its body is decoded (400, 413, a client gone) gives its place back.
    scope.addHook('onResponse', async (request) => release(request));
    scope.addHook('onRequestAbort', async (request) => release(request));
    scope.addHook('preParsing', async (request, _reply, payload) => gunzipped(request, payload));
    scope.setErrorHandler((error: FastifyError, request, reply) => {
      const zlibError = typeof error.code === 'string' && error.code.startsWith('Z_');
      const status = zlibError ? 400 : (error.statusCode ?? 500);
      // A server-side failure says nothing of the server's insides to the client.
      const message = zlibError
        ? `the body is not valid gzip: ${error.message}`
        : status >= 500
          ? 'internal error'
          : error.message;
      return answer(reply, status, { error: message, request_id: request.id });
    });

    scope.post(options.path, { bodyLimit: options.maxBodyBytes }, async (request, reply) => {
      release(request);
      const decoded = decode(request.body as Body | undefined, request, options);
      if (typeof decoded === 'string') return answer(reply, 400, { error: decoded, request_id: request.id });
      const outcome = await intake.submit(decoded, traceOf(request.headers));
      return answer(reply, outcome.status, body(outcome, request.id));
    });
  });

  function answer(reply: FastifyReply, status: number, payload: Record<string, unknown>): FastifyReply {
    if (status === 429 || status === 503) reply.header('retry-after', String(options.retryAfterSeconds));
    options.onAnswer?.(status);
    return reply.code(status).send(payload);
  }
}

function decode(body: Body | undefined, request: FastifyRequest, options: IngestRouteOptions): Decoded | string {
  if (body === undefined) return 'a body is required: text/plain lines, NDJSON or a JSON array';
  const at = { stage: options.stage, locator: requestLocator(request.id, request.ip) };
  switch (body.kind) {
    case 'lines':
      return decodeLines(body.bytes, at);
    case 'ndjson':
      return decodeNdjson(body.bytes, options.records, at);
    case 'json':
      return decodeJson(body.value, body.size, options.records, at);
  }
}

function body(outcome: Outcome, requestId: string): Record<string, unknown> {
  return outcome.status === 200
    ? { accepted: outcome.records, dead_letters: outcome.deadLetters, request_id: requestId }
    : { error: outcome.reason, request_id: requestId };
}

/** The body as sent, or gunzipped; Fastify's body limit then bounds both sizes (`receivedEncodedLength`). */
function gunzipped(request: FastifyRequest, payload: Readable): Readable {
  const encoding = (request.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (encoding === 'identity') return payload;
  if (encoding !== 'gzip' && encoding !== 'x-gzip') {
    throw new HttpError(415, `Content-Encoding ${encoding} is not supported: send identity or gzip`);
  }
  const gunzip = Object.assign(createGunzip(), { receivedEncodedLength: 0 });
  payload.on('data', (chunk: Buffer) => {
    gunzip.receivedEncodedLength += chunk.length;
  });
  payload.on('error', (error) => gunzip.destroy(error));
  return payload.pipe(gunzip);
}

/** The request's W3C Trace Context: a valid `traceparent`, and `tracestate` only with one (as the specification says). */
function traceOf(headers: IncomingHttpHeaders): TraceContext | undefined {
  const traceparent = parseTraceparent(headers.traceparent);
  if (traceparent === undefined) return undefined;
  const tracestate = headers.tracestate;
  return typeof tracestate === 'string' && tracestate !== '' ? { traceparent, tracestate } : { traceparent };
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

/** Compares digests (equal lengths) in constant time, so neither the key nor its length leaks through timing. */
function authorized(headers: IncomingHttpHeaders, expected: Buffer): boolean {
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? '')?.[1];
  const given = bearer ?? headers['x-api-key'];
  if (typeof given !== 'string' || given === '') return false;
  return timingSafeEqual(digest(given), expected);
}
