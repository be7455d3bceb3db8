/** TLS 1.3 only when a certificate is configured; plain HTTP only on loopback unless allowed. */
import { rm } from 'node:fs/promises';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  randomNamespace,
  REDIS_URL,
  scratchDatabase,
  selfSignedCertificate,
  testApi,
} from '../../../test/support/security-api.ts';
import { securityLayer } from './layer.ts';
import { SecurityStore } from './store.ts';
import { assertListenAllowed, isLoopback } from './transport.ts';

let db: { url: string; drop(): Promise<void> };
let store: SecurityStore;
let cert: Awaited<ReturnType<typeof selfSignedCertificate>>;
let key: string;

beforeAll(async () => {
  [db, cert] = await Promise.all([scratchDatabase(), selfSignedCertificate()]);
  store = await SecurityStore.open({ postgresUrl: db.url, dataDir: '.' });
  key = (await store.createKey('tls', 'viewer')).key;
});

afterAll(async () => {
  await store?.close();
  await db?.drop();
  if (cert) await rm(cert.dir, { recursive: true, force: true });
});

function rateLimit() {
  return { max: 1000, timeWindowMs: 60_000, redis: REDIS_URL, namespace: randomNamespace() };
}

describe('TLS', () => {
  let app: FastifyInstance;
  let port: number;

  beforeAll(async () => {
    app = await testApi({ store, rateLimit: rateLimit(), tls: cert });
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as AddressInfo).port;
  });
  afterAll(() => app?.close());

  function handshake(version: 'TLSv1.2' | 'TLSv1.3'): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connect({
        host: '127.0.0.1',
        port,
        ca: readFileSync(cert.certFile),
        servername: 'localhost',
        minVersion: version,
        maxVersion: version,
      });
      socket.once('secureConnect', () => {
        const protocol = socket.getProtocol() ?? '';
        socket.end();
        resolve(protocol);
      });
      socket.once('error', reject);
    });
  }

  it('refuses a TLS 1.2 client and accepts a TLS 1.3 one', async () => {
    await expect(handshake('TLSv1.2')).rejects.toThrow(/protocol version|alert/i);
    expect(await handshake('TLSv1.3')).toBe('TLSv1.3');
  });

  it('serves the API over TLS 1.3, keys checked as over loopback HTTP', async () => {
    const status = (authorization?: string) =>
      new Promise<number>((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port,
            path: '/pipelines',
            ca: readFileSync(cert.certFile),
            servername: 'localhost',
            headers: authorization ? { authorization } : {},
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.once('error', reject);
        req.end();
      });
    expect(await status(`Bearer ${key}`)).toBe(200);
    expect(await status()).toBe(401);
  });
});

describe('plain HTTP', () => {
  it('is allowed on loopback only, unless explicitly allowed', () => {
    for (const host of ['127.0.0.1', '::1', 'localhost', '127.1.2.3', '::ffff:127.0.0.1', '[::1]']) {
      expect(isLoopback(host), host).toBe(true);
      expect(() => assertListenAllowed(host, { tls: false })).not.toThrow();
    }
    for (const host of ['0.0.0.0', '::', '10.0.0.5', 'example.com']) {
      expect(isLoopback(host), host).toBe(false);
      expect(() => assertListenAllowed(host, { tls: false }), host).toThrow(/refusing plain HTTP/);
      expect(() => assertListenAllowed(host, { tls: true })).not.toThrow();
      expect(() => assertListenAllowed(host, { tls: false, allowPlainHttp: true })).not.toThrow();
    }
  });

  it('lets the daemon listen beyond loopback only with TLS or when plain HTTP is allowed', () => {
    const base = { store, rateLimit: rateLimit() };
    expect(securityLayer(base).allowsRemote).toBe(false);
    expect(securityLayer({ ...base, allowPlainHttp: true }).allowsRemote).toBe(true);
    const withTls = securityLayer({ ...base, tls: cert });
    expect(withTls.allowsRemote).toBe(true);
    expect(withTls.serverOptions.https?.minVersion).toBe('TLSv1.3');
    expect(() => securityLayer({ ...base, tls: { certFile: '/nonexistent.pem', keyFile: cert.keyFile } })).toThrow(
      /nonexistent/,
    );
  });

  // Needs an address of this machine other than loopback (any container has one).
  const external = Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

  it.skipIf(external === undefined)('refuses requests that reach a non-loopback address in clear', async () => {
    for (const allowPlainHttp of [false, true]) {
      const app = await testApi({ store, rateLimit: rateLimit(), allowPlainHttp });
      try {
        // Listening on every address, as a daemon misconfigured past assertListenAllowed would.
        await app.listen({ host: '0.0.0.0', port: 0 });
        const port = (app.server.address() as AddressInfo).port;
        const headers = { authorization: `Bearer ${key}` };
        const outside = await fetch(`http://${external}:${port}/pipelines`, { headers });
        expect(outside.status).toBe(allowPlainHttp ? 200 : 403);
        expect((await fetch(`http://127.0.0.1:${port}/pipelines`, { headers })).status).toBe(200);
      } finally {
        await app.close();
      }
    }
  });
});
