/** PostgreSQL servers through `pg`: a bounded pool, COPY through pg-copy-streams. */
import { once } from 'node:events';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { BINARY_HEADER, BINARY_TRAILER } from './binary-buffer.ts';
import type { ConnectOptions, CopyFormat, CopyWriter, Database, QueryResult, ScriptResult, Session } from './driver.ts';
import { maskUrl } from './driver.ts';

export class ServerDatabase implements Database {
  readonly kind = 'server' as const;
  readonly label: string;
  private readonly pool: pg.Pool;
  private closed = false;

  constructor(url: string, options: ConnectOptions) {
    this.label = maskUrl(url);
    this.pool = new pg.Pool({
      connectionString: url,
      max: options.poolMaxConnections,
      connectionTimeoutMillis: options.connectTimeoutMs,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: options.applicationName,
      // Event-time buckets are computed in UTC; zone-less timestamps must mean the same to the server.
      options: '-c TimeZone=UTC',
    });
    // An idle client losing its connection must not crash the process; the next checkout reconnects.
    this.pool.on('error', () => {});
  }

  async session(): Promise<Session> {
    if (this.closed) throw new Error(`database ${this.label} is closed`);
    const client = await this.pool.connect();
    return new ServerSession(client);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}

class ServerSession implements Session {
  broken = false;
  private client: pg.PoolClient | undefined;
  private readonly onError = (): void => {
    this.broken = true;
  };

  constructor(client: pg.PoolClient) {
    this.client = client;
    client.on('error', this.onError);
    client.on('end', this.onError);
  }

  get pid(): number | undefined {
    // Sent by the server at startup (BackendKeyData); node-postgres keeps it, its types do not declare it.
    return (this.client as { processID?: number | null } | undefined)?.processID ?? undefined;
  }

  async query(sql: string, params?: readonly unknown[]): Promise<QueryResult> {
    const result = await this.use().query({ text: sql, values: params as unknown[] | undefined });
    return toResult(result);
  }

  async script(sql: string): Promise<ScriptResult[]> {
    const result = (await this.use().query({ text: sql, rowMode: 'array' })) as
      | pg.QueryArrayResult
      | pg.QueryArrayResult[];
    return (Array.isArray(result) ? result : [result]).map(toResult);
  }

  copyIn(target: string, format: CopyFormat = 'text'): CopyWriter {
    if (format === 'text') return new ServerCopy(this.use().query(copyFrom(`COPY ${target} FROM STDIN`)), undefined);
    const stream = this.use().query(copyFrom(`COPY ${target} FROM STDIN (FORMAT binary)`));
    stream.write(BINARY_HEADER);
    return new ServerCopy(stream, BINARY_TRAILER);
  }

  release(destroy = false): void {
    const client = this.client;
    if (!client) return;
    this.client = undefined;
    client.off('error', this.onError);
    client.off('end', this.onError);
    // A client whose connection failed (or that may be mid-transaction) is destroyed, not pooled.
    client.release(this.broken || destroy ? true : undefined);
  }

  private use(): pg.PoolClient {
    if (!this.client) throw new Error('session already released');
    return this.client;
  }
}

/**
 * A COPY over pg-copy-streams. Each write goes to the socket; `write` waits only when the socket's buffer
 * is full, so the server ingests while the pipeline encodes the next rows.
 */
class ServerCopy implements CopyWriter {
  private readonly stream: ReturnType<typeof copyFrom>;
  private readonly finished: Promise<number>;
  private failure: unknown;
  private ended = false;
  /** Sent before the end (binary format's trailer). */
  private readonly trailer: Buffer | undefined;

  constructor(stream: ReturnType<typeof copyFrom>, trailer: Buffer | undefined) {
    this.stream = stream;
    this.trailer = trailer;
    this.finished = new Promise<number>((resolve, reject) => {
      stream.once('finish', () => resolve(stream.rowCount));
      stream.once('error', (error: unknown) => {
        this.failure = error ?? new Error('COPY failed');
        reject(this.failure);
      });
    });
    // Surfaced by the next write or by end; never as an unhandled rejection.
    this.finished.catch(() => {});
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (this.ended) throw new Error('COPY already ended');
    if (this.stream.write(chunk)) return;
    await Promise.race([once(this.stream, 'drain'), this.finished]);
  }

  end(): Promise<number> {
    if (!this.ended && this.failure === undefined) {
      this.ended = true;
      this.stream.end(this.trailer);
    }
    return this.finished;
  }
}

/** A result as the driver interface has it; rows as node-postgres gave them (objects, or arrays in rowMode 'array'). */
function toResult<Row>(result: pg.QueryResultBase & { rows: Row[] }) {
  const out = {
    rows: result.rows,
    fields: (result.fields ?? []).map((f) => f.name),
    fieldTypes: (result.fields ?? []).map((f) => f.dataTypeID),
    command: result.command,
  };
  return result.rowCount === null ? out : { ...out, rowCount: result.rowCount };
}
