/**
 * The hook a security layer plugs into: registered before the routes, it sees every route with the role its
 * caller needs, and may answer first; with it, the daemon listens where it is told.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import { apiKeyHeaders, applyToServer } from '../../engine/serve/client.ts';
import type { SecurityLayer } from '../../engine/serve/daemon.ts';
import { daemon } from './helpers.ts';

interface Route {
  url: string;
  method: string;
  role: () => unknown;
}

/** A stand-in layer: one key per role, checked on every route; a route without a role is refused. */
function layer(routes: Route[]): SecurityLayer {
  const rank: Record<string, number> = { public: 0, viewer: 1, operator: 2, admin: 3 };
  return {
    allowsRemote: true,
    async register(app: FastifyInstance) {
      app.addHook('onRoute', (route) => {
        // Read once every hook has seen the route (the daemon sets the docs routes' role in a hook of its own).
        for (const method of [route.method].flat())
          routes.push({ url: route.url, method, role: () => route.config?.role });
      });
      app.addHook('onRequest', async (request, reply) => {
        const needed = request.routeOptions.config.role;
        if (needed === undefined) return reply.code(403).send({ message: 'route without a role' });
        const bearer = request.headers.authorization === 'Bearer operator-key' ? 'operator' : undefined;
        const held = String(request.headers['x-role'] ?? bearer ?? 'public');
        if ((rank[held] ?? 0) < (rank[needed] ?? 99)) return reply.code(held === 'public' ? 401 : 403).send({});
      });
    },
  };
}

describe('the security hook of etl serve', () => {
  it('sees a role on every route, answers before the routes, and lets the daemon listen beyond loopback', async () => {
    const routes: Route[] = [];
    const d = await daemon({ host: '0.0.0.0', security: layer(routes) });
    try {
      expect(d.host).toBe('0.0.0.0');
      expect(d.log()).not.toContain('no security layer');
      const served = routes.filter((r) => r.method !== 'HEAD').map((r) => ({ ...r, role: r.role() }));
      expect(served.length).toBeGreaterThan(12);
      expect(served.filter((r) => r.role === undefined)).toEqual([]);
      const roleOf = (method: string, url: string) => served.find((r) => r.method === method && r.url === url)?.role;
      expect(roleOf('GET', '/healthz')).toBe('public');
      expect(roleOf('GET', '/pipelines')).toBe('viewer');
      expect(roleOf('POST', '/pipelines')).toBe('operator');
      expect(roleOf('DELETE', '/pipelines/:name')).toBe('operator');

      expect((await d.call('GET', '/healthz')).status).toBe(200);
      expect((await d.call('GET', '/docs/json')).status).toBe(200);
      expect((await d.call('GET', '/pipelines')).status).toBe(401);
      expect((await d.call('GET', '/pipelines', undefined, { 'x-role': 'viewer' })).status).toBe(200);
      expect((await d.call('POST', '/pipelines/x/stop', undefined, { 'x-role': 'viewer' })).status).toBe(403);
      expect((await d.call('POST', '/pipelines/x/stop', undefined, { 'x-role': 'operator' })).status).toBe(404);

      // `etl apply --server` sends ETL_API_KEY as a bearer token.
      const files = await mkdtemp(join(tmpdir(), 'etl-serve-key-'));
      try {
        await writeFile(join(files, 'p.yaml'), pipelineIn(files));
        const out = { text: '', write: (c: string) => (out.text += c) };
        const refused = applyToServer([files], 'apply', { server: d.url, out, err: out });
        await expect(refused).rejects.toThrow(/answered 401/);
        const headers = apiKeyHeaders({ ETL_API_KEY: 'operator-key' });
        expect(await applyToServer([files], 'apply', { server: d.url, out, err: out, headers })).toBe(0);
        expect(out.text).toContain('keyed: created');
        await d.call('DELETE', '/pipelines/keyed', undefined, { 'x-role': 'operator' });
      } finally {
        await rm(files, { recursive: true, force: true });
      }
    } finally {
      await d.shutdown();
    }
  });
});

const pipelineIn = (dir: string) => `apiVersion: etl/v1
kind: Pipeline
metadata: { name: keyed }
spec:
  settings: { data_dir: ${join(dir, '.etl')} }
  sources:
    logs: { type: generator, count: 10 }
  sinks:
    out: { type: blackhole, inputs: [logs] }
`;
