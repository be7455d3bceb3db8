/**
 * The security layer's own routes, for admins only: the audit log (`GET /audit`) and the keys
 * (`POST /keys`, `GET /keys`, `DELETE /keys/:id`), which is how keys are managed while a daemon holds
 * the embedded database (`etl keys` needs it to itself).
 */
import type { FastifyInstance } from 'fastify';
import { ROLES, type Role } from './keys.ts';
import type { AuditOutcome, SecurityStore } from './store.ts';

const OUTCOMES = ['ok', 'failed', 'unauthenticated', 'forbidden', 'rate_limited'] as const;
export const MAX_AUDIT_LIMIT = 1000;

const keyInfoSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    role: { type: 'string', enum: ROLES },
    createdAt: { type: 'string' },
    revokedAt: { type: ['string', 'null'] },
  },
} as const;

const KEY_ID = { type: 'string', pattern: '^[0-9a-f]{16}$', description: 'A key id (16 hex digits).' } as const;

interface AuditQuery {
  key_id?: string;
  outcome?: AuditOutcome;
  method?: string;
  status?: number;
  since?: string;
  until?: string;
  before_seq?: number;
  limit: number;
}

export async function registerSecurityRoutes(app: FastifyInstance, options: { store: SecurityStore }) {
  const { store } = options;

  // The audit log, newest first: mutating calls and refused requests.
  app.get<{ Querystring: AuditQuery }>(
    '/audit',
    {
      config: { role: 'admin' },
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            key_id: KEY_ID,
            outcome: { type: 'string', enum: OUTCOMES },
            method: { type: 'string', pattern: '^[A-Za-z]{1,10}$' },
            status: { type: 'integer', minimum: 100, maximum: 599 },
            since: { type: 'string', format: 'date-time' },
            until: { type: 'string', format: 'date-time' },
            before_seq: { type: 'integer', minimum: 1, description: 'Only entries older than this one (paging).' },
            limit: { type: 'integer', minimum: 1, maximum: MAX_AUDIT_LIMIT, default: 100 },
          },
        },
      },
    },
    async (request) => {
      const q = request.query;
      const entries = await store.queryAudit({
        keyId: q.key_id,
        outcome: q.outcome,
        method: q.method,
        status: q.status,
        since: q.since,
        until: q.until,
        beforeSeq: q.before_seq,
        limit: q.limit,
      });
      const last = entries.at(-1);
      return { entries, ...(entries.length === q.limit && last ? { next_before_seq: last.seq } : {}) };
    },
  );

  // Creates an API key; the answer is the only time its secret is shown.
  app.post<{ Body: { name: string; role: Role } }>(
    '/keys',
    {
      config: { role: 'admin', revealsKey: true },
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'role'],
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 200 },
            role: { type: 'string', enum: ROLES },
          },
        },
      },
    },
    async (request, reply) => reply.code(201).send(await store.createKey(request.body.name, request.body.role)),
  );

  app.get(
    '/keys',
    { config: { role: 'admin' }, schema: { response: { 200: { type: 'array', items: keyInfoSchema } } } },
    () => store.listKeys(),
  );

  app.delete<{ Params: { id: string } }>(
    '/keys/:id',
    {
      config: { role: 'admin' },
      schema: { params: { type: 'object', required: ['id'], properties: { id: KEY_ID } } },
    },
    async (request, reply) => {
      const revoked = await store.revokeKey(request.params.id);
      if (!revoked)
        return reply
          .code(404)
          .send({ statusCode: 404, code: 'ETL_API_NO_SUCH_KEY', error: 'Not Found', message: 'no such key' });
      return revoked;
    },
  );
}
