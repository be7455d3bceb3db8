/**
 * One interface over the two ways to reach PostgreSQL: a server through `pg` (pooled connections, COPY
 * through pg-copy-streams) and the embedded PGlite (one in-process session). Everything above this file
 * (DDL, partitions, COPY, checkpoints, `etl query`) is written once against `Session`.
 */
import { join, resolve } from 'node:path';

/** COPY's text format, or its binary one (the server parses less; a server's connections only). */
export type CopyFormat = 'text' | 'binary';

export interface QueryResult {
  readonly rows: Record<string, unknown>[];
  readonly fields: readonly string[];
  /** Type OID of each field. */
  readonly fieldTypes: readonly number[];
  readonly command?: string;
  readonly rowCount?: number;
}

/**
 * A statement's result with each row an array in field order: what `etl query` shows, where names may repeat
 * (`SELECT count(*), count(city)` has two columns named `count`, which rows keyed by name would merge).
 */
export interface ScriptResult extends Omit<QueryResult, 'rows'> {
  readonly rows: unknown[][];
}

export interface Session {
  query(sql: string, params?: readonly unknown[]): Promise<QueryResult>;
  /** Runs several statements in one go (no parameters); the result of each. */
  script(sql: string): Promise<ScriptResult[]>;
  /**
   * Starts `COPY <target> FROM STDIN` in `format` (default text; the writer sends binary's header and
   * trailer itself, chunks are whole rows). Until the writer has ended, nothing else can run on this session.
   */
  copyIn(target: string, format?: CopyFormat): CopyWriter;
  /** True once the connection is known to be unusable (it will be discarded on release). */
  readonly broken: boolean;
  /** The server process of this session (pg_stat_activity.pid); undefined for the embedded database. */
  readonly pid?: number | undefined;
  /** Returns the connection to the pool, or discards it when broken or `destroy`. Idempotent. */
  release(destroy?: boolean): void;
}

/**
 * One COPY in progress. Rows stream to the server while the caller prepares more; the server reports a
 * refused row whenever it reaches it, so a failure may surface at any later `write` or at `end`.
 */
export interface CopyWriter {
  /** Sends whole rows; resolves once the writer can take more (backpressure), rejects once the COPY failed. */
  write(chunk: Uint8Array): Promise<void>;
  /** Ends the COPY: the number of rows once the server has them all, or the COPY's error. Idempotent. */
  end(): Promise<number>;
}

/** Sends `chunks` in one COPY; the number of rows copied. */
export async function copyAll(
  session: Session,
  target: string,
  chunks: readonly Uint8Array[],
  format: CopyFormat = 'text',
): Promise<number> {
  const writer = session.copyIn(target, format);
  for (const chunk of chunks) await writer.write(chunk);
  return writer.end();
}

export interface Database {
  readonly kind: 'server' | 'embedded';
  /** For messages: the URL with its password masked, or the data directory. */
  readonly label: string;
  /**
   * True while other users in this process share the database's one backend (an embedded database that
   * several sinks write to): a user then holds the backend only to commit, never between checkpoints.
   */
  readonly shared?: boolean;
  session(): Promise<Session>;
  /** Idempotent. */
  close(): Promise<void>;
}

export type DatabaseTarget =
  | { readonly kind: 'server'; readonly url: string }
  | { readonly kind: 'embedded'; readonly dir: string };

export interface ConnectOptions {
  readonly poolMaxConnections: number;
  readonly connectTimeoutMs: number;
  /** Shown in pg_stat_activity. */
  readonly applicationName: string;
}

/** `url` option, else DATABASE_URL, else the embedded database under `<dataDir>/pgdata`. */
export function resolveTarget(url: string | undefined, dataDir: string, env = process.env): DatabaseTarget {
  const chosen = url ?? env.DATABASE_URL;
  if (chosen !== undefined && chosen !== '') return { kind: 'server', url: chosen };
  return { kind: 'embedded', dir: embeddedDir(dataDir) };
}

export function embeddedDir(dataDir: string): string {
  return resolve(join(dataDir, 'pgdata'));
}

export function targetLabel(target: DatabaseTarget): string {
  return target.kind === 'server' ? maskUrl(target.url) : `embedded ${target.dir}`;
}

/** The URL without its password, for logs and errors. */
export function maskUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}

export async function openDatabase(target: DatabaseTarget, options: ConnectOptions): Promise<Database> {
  if (target.kind === 'server') {
    const { ServerDatabase } = await import('./pg-driver.ts');
    return new ServerDatabase(target.url, options);
  }
  const { openEmbedded } = await import('./pglite-driver.ts');
  return openEmbedded(target.dir, options.applicationName);
}

/** Double-quotes an identifier. */
export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Single-quotes a literal. */
export function literal(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}
