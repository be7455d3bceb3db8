/** A throwaway JetStream stream on the test server (127.0.0.1:4222 unless ETL_TEST_NATS_URL), deleted after. */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';

export const NATS_URL = process.env.ETL_TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

export class ThrowawayStream {
  readonly name: string;
  readonly subject: string;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  private constructor(nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager, name: string) {
    this.nc = nc;
    this.js = js;
    this.jsm = jsm;
    this.name = name;
    this.subject = `etltest.${name}`;
  }

  /** A new stream holding `etltest.<name>.>`, with a de-duplication window. */
  static async create(prefix = 'T', config: { max_msg_size?: number } = {}): Promise<ThrowawayStream> {
    const nc = await connect({ servers: NATS_URL });
    const jsm = await jetstreamManager(nc);
    const name = `${prefix}_${randomBytes(5).toString('hex')}`.toUpperCase();
    await jsm.streams.add({ name, subjects: [`etltest.${name}.>`], duplicate_window: 120e9, ...config });
    return new ThrowawayStream(nc, jetstream(nc), jsm, name);
  }

  /** Publishes `lines` on `<subject>.<suffix>` and waits for every publish ack. */
  async publish(lines: readonly string[], suffix = 'access', window = 1000): Promise<void> {
    const encoder = new TextEncoder();
    for (let i = 0; i < lines.length; i += window) {
      await Promise.all(
        lines.slice(i, i + window).map((line) => this.js.publish(`${this.subject}.${suffix}`, encoder.encode(line))),
      );
    }
  }

  /** The consumer's counts; all -1 while it does not exist yet (the pipeline creates it). */
  async consumer(durable: string): Promise<{ ackPending: number; pending: number; redelivered: number }> {
    const info = await this.jsm.consumers.info(this.name, durable).catch(() => undefined);
    if (info === undefined) return { ackPending: -1, pending: -1, redelivered: -1 };
    return { ackPending: info.num_ack_pending, pending: info.num_pending, redelivered: info.num_redelivered };
  }

  async messages(): Promise<number> {
    return (await this.jsm.streams.info(this.name)).state.messages;
  }

  /** Every message the stream holds, in order: subject, payload as text, message id (through an ordered consumer). */
  async read(): Promise<Array<{ subject: string; data: string; id: string | undefined }>> {
    const total = (await this.jsm.streams.info(this.name)).state.messages;
    const out: Array<{ subject: string; data: string; id: string | undefined }> = [];
    if (total === 0) return out;
    const consumer = await this.js.consumers.get(this.name);
    while (out.length < total) {
      const batch = await consumer.fetch({ max_messages: Math.min(total - out.length, 10_000), expires: 2000 });
      for await (const msg of batch) {
        out.push({ subject: msg.subject, data: msg.string(), id: msg.headers?.get('Nats-Msg-Id') || undefined });
      }
    }
    return out;
  }

  async drop(): Promise<void> {
    await this.jsm.streams.delete(this.name).catch(() => {});
    await this.nc.close();
  }
}

/** `n` common-log lines whose path carries their number (`/item?seq=<i>`). */
export function accessLines(n: number, from = 0): string[] {
  const lines: string[] = [];
  for (let i = from; i < from + n; i++) {
    lines.push(
      `10.0.${(i >> 8) & 255}.${i & 255} - - [10/Oct/2026:13:55:36 +0000] "GET /item?seq=${i} HTTP/1.1" 200 ${i % 5000}`,
    );
  }
  return lines;
}

/** A nats-server of the test's own (JetStream, its own port and store), that can be stopped and started again. */
export class ThrowawayNatsServer {
  readonly url: string;
  private child: ChildProcess | undefined;
  private readonly port: number;
  private readonly dir: string;
  private constructor(port: number, dir: string) {
    this.port = port;
    this.dir = dir;
    this.url = `nats://127.0.0.1:${port}`;
  }

  static async start(): Promise<ThrowawayNatsServer> {
    const dir = await mkdtemp(join(tmpdir(), 'etl-nats-server-'));
    const server = new ThrowawayNatsServer(await freePort(), dir);
    await server.resume();
    return server;
  }

  /** Starts the server (again, on the same port and store) and waits until it takes connections. */
  async resume(): Promise<void> {
    const child = spawn(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(this.port), '-js', '-sd', this.dir], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    // A server that cannot start (not on PATH, a bad store) ends the wait at once, with its own words.
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    let gone: Error | undefined;
    child.once('error', (error) => {
      gone = new Error(`cannot start ${NATS_SERVER}: ${error.message}`);
    });
    child.once('exit', (code, signal) => {
      gone ??= new Error(`${NATS_SERVER} exited (${signal ?? code}) before taking connections: ${stderr.trim()}`);
    });
    for (;;) {
      if (gone) throw gone;
      const nc = await connect({ servers: this.url, reconnect: false }).catch(() => undefined);
      if (nc) {
        await nc.close();
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Kills the server (SIGKILL) and waits for it to be gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    await this.kill();
    await rm(this.dir, { recursive: true, force: true });
  }
}

const NATS_SERVER = process.env.ETL_TEST_NATS_SERVER ?? 'nats-server';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}
