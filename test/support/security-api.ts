/**
 * For the tests of the security layer: a database of their own on the PostgreSQL server, a small API with
 * routes of each role, and certificates made with the openssl CLI.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Fastify, { type FastifyInstance } from 'fastify';
import pg from 'pg';
import { pipelineNameSchema } from '../../engine/server/security/pipeline-name.ts';
import { type SecurityLayerOptions, securityLayer } from '../../engine/server/security/layer.ts';
import type { TlsFiles } from '../../engine/server/security/transport.ts';

const run = promisify(execFile);

export const POSTGRES_URL = process.env.ETL_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.ETL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A fresh database on the server; `drop` removes it. */
export async function scratchDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `etl_security_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** A self-signed certificate for 127.0.0.1 and localhost. */
export async function selfSignedCertificate(): Promise<TlsFiles & { dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'etl-tls-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ]);
  return { dir, certFile, keyFile };
}

/**
 * An API like the daemon's: routes of each role, one without a role, a public probe, and routes that
 * answer or fail with a secret in them.
 */
export async function testApi(options: SecurityLayerOptions & { secret?: string }): Promise<FastifyInstance> {
  // As the daemon does it (engine/serve/daemon.ts).
  const layer = securityLayer(options);
  const app = Fastify({ logger: false, ...layer.serverOptions });
  await layer.register(app);
  app.get('/healthz', { config: { role: 'public' } }, async () => ({ ok: true }));
  app.get('/pipelines', async () => ({ pipelines: [] }));
  // Made public by a hook of a child scope, after the plugin's own (as engine/serve does for /docs).
  await app.register(async (scope) => {
    scope.addHook('onRoute', (route) => {
      route.config = { ...route.config, role: 'public' };
    });
    scope.get('/docs/json', async () => ({ openapi: '3.0.0' }));
  });
  app.post<{ Params: { name: string }; Body: unknown }>(
    '/pipelines/:name',
    {
      config: { role: 'operator' },
      schema: { params: { type: 'object', required: ['name'], properties: { name: pipelineNameSchema } } },
    },
    async (request) => ({ name: request.params.name, body: request.body }),
  );
  app.delete<{ Params: { name: string } }>(
    '/pipelines/:name',
    {
      config: { role: 'admin' },
      schema: { params: { type: 'object', required: ['name'], properties: { name: pipelineNameSchema } } },
    },
    async (request) => ({ deleted: request.params.name }),
  );
  app.post('/unmarked', async () => ({ done: true }));
  app.post('/ingest', { config: { role: 'operator', audit: false } }, async () => ({ accepted: true }));
  app.get('/config', async () => ({
    dsn: `postgres://etl:${options.secret ?? 'none'}@db/logs`,
    token: options.secret,
  }));
  app.get('/boom', async () => {
    throw new Error(`cannot reach postgres://etl:${options.secret ?? 'none'}@db/logs`);
  });
  app.post('/bad', { config: { role: 'operator' } }, async () => {
    throw Object.assign(new Error(`refused value ${options.secret ?? 'none'}`), { statusCode: 422 });
  });
  return app;
}

export function randomNamespace(): string {
  return `etl-test-rl:${randomBytes(6).toString('hex')}:`;
}
