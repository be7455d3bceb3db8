/**
 * The security layer of the daemon's API, one Fastify plugin: API keys checked on every request, roles
 * checked on every route (deny by default), rate limits per key shared through Redis, an append-only audit
 * log of every mutating call and every refused one, security headers, a nesting bound on JSON bodies, and
 * secrets kept out of answers and errors. Register it before any route: it sees routes as they are added.
 *
 * Order within a request (all before the body is read):
 *   onRequest, global:  plain-HTTP guard → route declared after the plugin? → authenticate (remembers the
 *                       outcome; answers nothing yet, so that a refused request is still counted)
 *   onRequest, route:   rate limit, keyed by the authenticated key, else by the client address
 *   (or the 404 handler's) → authorize (401 / 403)
 *   onSend, global:     audit → redact the answer
 */
import helmet, { type FastifyHelmetOptions } from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import { timingSafeEqual } from 'node:crypto';
import { limitJsonDepth } from './json-body.ts';
import type { Logger } from '../../operator.ts';
import { parseKey, type Role, roleAllows, secretDigest, verifySecret } from './keys.ts';
import { redactText } from './redact-text.ts';
import { registerSecurityRoutes } from './routes.ts';
import { type AuditOutcome, SecurityStore, type StoreLocation } from './store.ts';
import { DEFAULT_BODY_LIMIT_BYTES, isLoopback } from './transport.ts';

/** What a route may declare in `config.role`. */
export type RouteRole = 'public' | Role;

/** Who made a request: the key it presented, once verified. */
export interface Principal {
  readonly keyId: string;
  readonly keyName: string;
  readonly role: Role;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * Who may call the route: `public` (no key, not rate limited: liveness and readiness probes) or the
     * least role a key needs. Unmarked: `viewer` for GET/HEAD/OPTIONS, nobody for other methods.
     */
    role?: RouteRole;
    /** The answer carries a new API key: it is not redacted. */
    revealsKey?: boolean;
    /**
     * `false`: calls that succeed are not audited (a data-plane route such as the HTTP push source, whose
     * every POST would otherwise be a row); refused calls still are.
     */
    audit?: boolean;
    /** Set by the plugin on every route it has seen: a route without it was declared before the plugin. */
    etlSecured?: true;
  }
  interface FastifyRequest {
    principal: Principal | null;
    /** Why authentication failed, for the audit log (the client is told less). */
    authFailure: string | null;
  }
}

export interface RateLimitOptions {
  /** Requests per key (or per client address, before authentication) per window. */
  readonly max: number;
  readonly timeWindowMs: number;
  /**
   * Redis shared by every daemon, so a key's limit holds across them: a URL (the plugin connects and
   * disconnects) or a client (the caller's). Without it, counts stay in this process.
   */
  readonly redis?: string | Redis | undefined;
  /** Prefix of the counters' keys in Redis. */
  readonly namespace?: string | undefined;
}

export interface SecurityOptions {
  /** An open store (the caller's to close), or where to open one (closed with the server). */
  readonly store: SecurityStore | StoreLocation;
  readonly rateLimit: RateLimitOptions;
  /** Answer plain-HTTP requests that arrived on a non-loopback address (see transport.ts). */
  readonly allowPlainHttp?: boolean | undefined;
  readonly bodyLimitBytes?: number | undefined;
  readonly maxJsonDepth?: number | undefined;
  /** Values masked in answers and errors (the pipelines' `${secret:…}` values), read at each use. */
  readonly secrets?: (() => readonly string[]) | undefined;
  /** Where `/audit` and `/keys` are mounted (e.g. `/api/v1`). */
  readonly prefix?: string | undefined;
  readonly helmet?: FastifyHelmetOptions | undefined;
  /** Where refusals of the layer's own making and failures go; default the server's logger. */
  readonly logger?: Logger | undefined;
}

function fastifyLogger(app: FastifyInstance): Logger {
  return {
    debug: (message, fields) => app.log.debug(fields ?? {}, message),
    info: (message, fields) => app.log.info(fields ?? {}, message),
    warn: (message, fields) => app.log.warn(fields ?? {}, message),
    error: (message, fields) => app.log.error(fields ?? {}, message),
  };
}

export const DEFAULT_MAX_JSON_DEPTH = 32;

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const UNAUTHENTICATED = 'a valid API key is required (Authorization: Bearer etl_…)';

/** The least role `route` needs, or undefined when nobody may call it (an unmarked mutating route). */
export function requiredRole(method: string, config: { role?: RouteRole } | undefined): RouteRole | undefined {
  if (config?.role) return config.role;
  return SAFE_METHODS.has(method.toUpperCase()) ? 'viewer' : undefined;
}

async function security(app: FastifyInstance, options: SecurityOptions): Promise<void> {
  const store = options.store instanceof SecurityStore ? options.store : await SecurityStore.open(options.store);
  if (!(options.store instanceof SecurityStore)) app.addHook('onClose', () => store.close());
  const secrets = options.secrets ?? (() => []);
  const bodyLimit = options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  const allowPlainHttp = options.allowPlainHttp === true;
  // Until the rate limiter is registered (below), nothing is over its limit.
  let spent: (request: FastifyRequest) => Promise<boolean> = async () => false;
  const authenticate = authenticator(store, (request) => spent(request));
  const log = options.logger ?? fastifyLogger(app);

  app.decorateRequest('principal', null);
  app.decorateRequest('authFailure', null);

  await app.register(helmet, { global: true, ...options.helmet });
  limitJsonDepth(app, options.maxJsonDepth ?? DEFAULT_MAX_JSON_DEPTH);

  app.addHook('onRoute', (route) => {
    route.bodyLimit ??= bodyLimit;
    route.config = { ...route.config, etlSecured: true };
    const methods = [route.method].flat();
    if (methods.some((m) => requiredRole(m, route.config) === undefined)) {
      log.warn(
        `route ${methods.join(',')} ${route.url} declares no role (config.role) and changes state: every call is refused`,
      );
    }
  });

  app.addHook('onRequest', async (request, reply) => {
    const socket = request.raw.socket as { encrypted?: boolean; localAddress?: string };
    // No local address: not a network socket (a Unix socket, Fastify's inject), nothing crosses a wire.
    const local = socket.localAddress;
    if (!allowPlainHttp && socket.encrypted !== true && local !== undefined && !isLoopback(local)) {
      request.authFailure = 'plain HTTP on a non-loopback address';
      return reply.code(403).send(apiError(403, 'ETL_API_PLAIN_HTTP', 'plain HTTP is refused here: use HTTPS'));
    }
    const config = request.routeOptions.config;
    if (!request.is404 && config?.etlSecured !== true) {
      // Declared before registerSecurity: it has no authorization hook, so nobody may call it.
      log.error(`route ${request.method} ${request.routeOptions.url} was declared before the security layer: refused`);
      return reply
        .code(500)
        .send(apiError(500, 'ETL_API_UNSECURED_ROUTE', 'this route was declared before the security layer'));
    }
    if (config?.role === 'public') return;
    await authenticate(request);
  });

  const rateLimitRedis =
    typeof options.rateLimit.redis === 'string'
      ? new Redis(options.rateLimit.redis, { lazyConnect: false, maxRetriesPerRequest: 1, enableOfflineQueue: false })
      : options.rateLimit.redis;
  if (typeof options.rateLimit.redis === 'string' && rateLimitRedis) {
    // Errors reach the requests (and skipOnError); without a listener ioredis would print each one.
    rateLimitRedis.on('error', () => {});
    app.addHook('onClose', async () => {
      rateLimitRedis.disconnect();
    });
  }
  await app.register(rateLimit, {
    global: true,
    max: options.rateLimit.max,
    timeWindow: options.rateLimit.timeWindowMs,
    ...(rateLimitRedis ? { redis: rateLimitRedis } : {}),
    nameSpace: options.rateLimit.namespace ?? 'etl-rate-limit:',
    keyGenerator: (request: FastifyRequest) =>
      request.principal ? `key:${request.principal.keyId}` : `ip:${request.ip}`,
    // Decided per request: a hook added after this plugin's may still make a route public (engine/serve's
    // docs routes).
    allowList: (request: FastifyRequest) => request.routeOptions.config?.role === 'public',
    // Redis down: serve without limits rather than refuse every call (limits are abuse control, not access).
    skipOnError: true,
    errorResponseBuilder: (_request, context) =>
      apiError(
        context.statusCode,
        'ETL_API_RATE_LIMITED',
        `rate limit of ${context.max} requests exceeded, retry in ${context.after}`,
      ),
  });

  const peek = app.createRateLimit();
  spent = async (request) => {
    const state = await peek(request, { increment: false });
    return !state.isAllowed && state.remaining === 0;
  };

  // Added after the rate limiter's: route hooks run in the order added, so a refused key still counts.
  app.addHook('onRoute', (route: RouteOptions) => {
    route.onRequest = [route.onRequest ?? []].flat().concat(authorize);
  });

  // Unknown paths are limited and need a key too: a stranger cannot map the API by 401 versus 404. Fastify
  // runs every lifecycle hook given here (four-oh-four.js); its types declare only preValidation and
  // preHandler, which would come after the body is read.
  const notFoundHooks = {
    onRequest: [
      app.rateLimit(),
      async (request: FastifyRequest, reply: FastifyReply) => {
        if (!request.principal) return deny(reply, 401);
      },
    ],
  } as Parameters<FastifyInstance['setNotFoundHandler']>[0] & object;
  app.setNotFoundHandler(notFoundHooks, (request, reply) =>
    reply.code(404).send(apiError(404, 'ETL_API_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`)),
  );

  app.addHook('onSend', async (request, reply, payload) => {
    await audit({ log, store, secrets }, request, reply);
    reply.header('cache-control', reply.getHeader('cache-control') ?? 'no-store');
    if (typeof payload !== 'string' || request.routeOptions.config?.revealsKey) return payload;
    return redactText(payload, secrets());
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status = error.statusCode !== undefined && error.statusCode >= 400 ? error.statusCode : 500;
    if (status >= 500) {
      log.error('request failed', {
        request_id: request.id,
        route: request.routeOptions.url,
        error: redactText(error.message, secrets()),
        code: error.code,
      });
      return reply.code(status).send(apiError(status, 'ETL_API_INTERNAL', `internal error (request ${request.id})`));
    }
    return reply.code(status).send(apiError(status, error.code ?? 'ETL_API_BAD_REQUEST', error.message));
  });

  await app.register(registerSecurityRoutes, { store, prefix: options.prefix ?? '' });
}

/** Registers the security layer on the whole server (not only a child context). */
export const registerSecurity: (app: FastifyInstance, options: SecurityOptions) => Promise<void> = async (
  app,
  options,
) => {
  await app.register(fp(security, { name: 'etl-security', fastify: '5.x' }), options);
};

/**
 * `spent(request)`: whether the client (not yet known by a key, so by its address) has used its whole rate
 * limit. Its next wrong secret is then refused without scrypt, so a client that knows a key's id cannot
 * make the server hash at will: it gets a hash per request of its limit, then 429s.
 */
function authenticator(
  store: SecurityStore,
  spent: (request: FastifyRequest) => Promise<boolean>,
): (request: FastifyRequest) => Promise<void> {
  // Keys verified recently: id → the stored hash and a digest of the secret that matched it. The row is
  // still read on every request, so a revoked key is refused at once; only scrypt is skipped.
  const verified = new LRUCache<string, { hash: string; digest: Buffer }>({ max: 10_000 });
  return async (request) => {
    const presented = presentedKey(request);
    if (presented === undefined) {
      request.authFailure = 'no API key';
      return;
    }
    const parsed = parseKey(presented);
    if (!parsed) {
      request.authFailure = 'malformed API key';
      return;
    }
    // Ids are not secret (they are listed and logged): answering an unknown one at once tells nothing.
    const row = await store.findKey(parsed.id);
    if (!row) {
      request.authFailure = `unknown key id ${parsed.id}`;
      return;
    }
    if (row.revokedAt !== null) {
      request.authFailure = `revoked key ${row.id}`;
      return;
    }
    const digest = secretDigest(parsed.secret);
    const cached = verified.get(row.id);
    const known = cached !== undefined && cached.hash === row.hash;
    if (!known && (await spent(request))) {
      request.authFailure = `rate limit used up: the secret for key ${row.id} was not checked`;
      return;
    }
    const ok = known ? timingSafeEqual(cached.digest, digest) : await verifySecret(parsed.secret, row.hash);
    if (!ok) {
      request.authFailure = `wrong secret for key ${row.id}`;
      return;
    }
    verified.set(row.id, { hash: row.hash, digest });
    request.principal = { keyId: row.id, keyName: row.name, role: row.role };
  };
}

function presentedKey(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    return match ? match[1] : header;
  }
  const apiKey = request.headers['x-api-key'];
  return typeof apiKey === 'string' ? apiKey : undefined;
}

async function authorize(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const needed = requiredRole(request.method, request.routeOptions.config);
  // Read at each request, not when the route was declared: a later onRoute hook may have set it.
  if (needed === 'public') return;
  if (!request.principal) return deny(reply, 401);
  if (needed === undefined) {
    return deny(reply, 403, 'this route declares no role and changes state: it is refused to every key');
  }
  if (!roleAllows(request.principal.role, needed)) {
    return deny(
      reply,
      403,
      `this route needs the ${needed} role; key ${request.principal.keyId} has ${request.principal.role}`,
    );
  }
}

function deny(reply: FastifyReply, status: 401 | 403, message?: string): FastifyReply {
  if (status === 401) {
    reply.header('www-authenticate', 'Bearer realm="etl"');
    return reply.code(401).send(apiError(401, 'ETL_API_UNAUTHENTICATED', UNAUTHENTICATED));
  }
  if (message) reply.request.authFailure ??= message;
  return reply.code(403).send(apiError(403, 'ETL_API_FORBIDDEN', message ?? 'forbidden'));
}

function apiError(statusCode: number, code: string, message: string) {
  return { statusCode, code, error: STATUS_TEXT[statusCode] ?? 'Error', message };
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
};

function outcomeOf(status: number): AuditOutcome {
  if (status === 401) return 'unauthenticated';
  if (status === 403) return 'forbidden';
  if (status === 429) return 'rate_limited';
  return status < 400 ? 'ok' : 'failed';
}

/** Mutating calls whatever their outcome, and every refused authentication or authorization. */
interface AuditContext {
  readonly log: Logger;
  readonly store: SecurityStore;
  readonly secrets: () => readonly string[];
}

async function audit({ log, store, secrets }: AuditContext, request: FastifyRequest, reply: FastifyReply) {
  const status = reply.statusCode;
  const refused = status === 401 || status === 403 || request.authFailure !== null;
  if (!refused && (SAFE_METHODS.has(request.method) || request.routeOptions.config?.audit === false)) return;
  const principal = request.principal;
  const claimed = principal ? undefined : parseKey(presentedKey(request) ?? '')?.id;
  const entry = {
    keyId: principal?.keyId ?? claimed ?? null,
    keyName: principal?.keyName ?? null,
    role: principal?.role ?? null,
    method: request.method,
    // With its query string (`?dryRun=true` tells what the call did), secrets masked.
    path: redactText(request.url, secrets()),
    route: request.is404 ? null : (request.routeOptions.url ?? null),
    ip: request.ip,
    status,
    outcome: outcomeOf(status),
    reason: request.authFailure,
    requestId: String(request.id),
  };
  try {
    await store.appendAudit(entry);
  } catch (error) {
    // The call has happened; its record goes to the log rather than being lost silently.
    log.error('audit log write failed', { audit: entry, error: redactText(String(error)) });
  }
}
