/** PostgreSQL servers through `pg`: a bounded pool, COPY through pg-copy-streams. */
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { ConnectOptions, CopyHandle, Database, QueryResult, Session } from './driver.ts';
import { maskUrl } from './driver.ts';

/** pg-copy-streams' query, with the protocol hook its typings leave out. */
type CopyStream = ReturnType<typeof copyFrom> & { handleCopyInResponse(connection: unknown): void };

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

  async query(sql: string, params?: readonly unknown[]): Promise<QueryResult> {
    const result = await this.use().query({ text: sql, values: params as unknown[] | undefined });
    return toResult(result);
  }

  async script(sql: string): Promise<QueryResult[]> {
    const result = (await this.use().query(sql)) as pg.QueryResult | pg.QueryResult[];
    return (Array.isArray(result) ? result : [result]).map(toResult);
  }

  copyFrom(target: string, chunks: readonly Uint8Array[]): Promise<number> {
    return this.copyStart(target, chunks).done;
  }

  copyStart(target: string, chunks: readonly Uint8Array[]): CopyHandle {
    const stream = this.use().query(copyFrom(`COPY ${target} FROM STDIN`)) as CopyStream;
    let markSent = (): void => {};
    const sent = new Promise<void>((resolve) => {
      markSent = resolve;
    });
    // The payload leaves only when the server's CopyInResponse is read; that moment is "sent".
    const onResponse = stream.handleCopyInResponse;
    stream.handleCopyInResponse = function (this: CopyStream, connection: unknown) {
      onResponse.call(this, connection);
      markSent();
    };
    const done = new Promise<number>((resolve, reject) => {
      stream.once('finish', () => resolve(stream.rowCount));
      stream.once('error', reject);
      for (const chunk of chunks) stream.write(chunk);
      stream.end();
    });
    done.then(markSent, markSent);
    return { sent, done };
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

function toResult(result: pg.QueryResult): QueryResult {
  const out: QueryResult = {
    rows: result.rows as Record<string, unknown>[],
    fields: (result.fields ?? []).map((f) => f.name),
    fieldTypes: (result.fields ?? []).map((f) => f.dataTypeID),
    command: result.command,
  };
  return result.rowCount === null ? out : { ...out, rowCount: result.rowCount };
}
