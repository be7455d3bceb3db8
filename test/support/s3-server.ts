/**
 * An S3-compatible server of the test's own (s3rver, in a child process) on a free port of 127.0.0.1, its data in
 * a temporary directory, and a client for it. Started means it printed the port it listens on.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../../operators/shared/s3-client.ts';

const MAIN = fileURLToPath(new URL('./s3-server-main.ts', import.meta.url));

/** What the `s3` operators' options need to reach it (s3rver takes any credentials). */
export interface S3Connection {
  readonly bucket: string;
  readonly endpoint: string;
  readonly region: string;
  readonly force_path_style: true;
  readonly access_key_id: string;
  readonly secret_access_key: string;
  readonly max_attempts: number;
}

export class TestS3Server {
  readonly endpoint: string;
  private readonly child: ChildProcess;
  private readonly dir: string;
  private buckets = 0;
  /** s3rver's log lines since it listened: one per request (`bucket/key?partNumber=2&uploadId=… 200 …`). */
  readonly log: string[];

  private constructor(endpoint: string, child: ChildProcess, dir: string, log: string[]) {
    this.endpoint = endpoint;
    this.child = child;
    this.dir = dir;
    this.log = log;
  }

  static async start(): Promise<TestS3Server> {
    const dir = mkdtempSync(join(tmpdir(), 'etl-s3-server-'));
    const child = spawn(process.execPath, ['--openssl-legacy-provider', MAIN, dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const exited = once(child, 'exit').then(([code]) => {
      throw new Error(`s3rver exited (${String(code)}) before it listened`);
    });
    const log: string[] = [];
    // Its errors (a client that hung up mid-transfer, as a stopped source does) go to the log, not the test's output.
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => log.push(line));
    const listening = new Promise<number>((resolve, reject) => {
      let port: number | undefined;
      lines.on('line', (line) => {
        const match = /^listening (\d+)$/.exec(line);
        if (port === undefined && match) {
          port = Number(match[1]);
          resolve(port);
        } else if (port !== undefined) log.push(line);
      });
      lines.on('close', () => reject(new Error('s3rver closed its output before it listened')));
    });
    const port = await Promise.race([listening, exited]);
    exited.catch(() => {});
    return new TestS3Server(`http://127.0.0.1:${port}`, child, dir, log);
  }

  /** A new empty bucket, and the options that reach it. */
  async bucket(): Promise<S3Connection> {
    this.buckets += 1;
    const connection: S3Connection = {
      bucket: `test-bucket-${this.buckets}-${process.pid}`,
      endpoint: this.endpoint,
      region: 'us-east-1',
      force_path_style: true,
      access_key_id: 'S3RVER',
      secret_access_key: 'S3RVER',
      max_attempts: 3,
    };
    const client = this.client(connection);
    await client.send(new CreateBucketCommand({ Bucket: connection.bucket }));
    client.destroy();
    return connection;
  }

  client(connection: S3Connection): S3Client {
    return createS3Client(connection);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = once(this.child, 'exit');
      this.child.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
