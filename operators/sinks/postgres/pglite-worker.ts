/**
 * The embedded PostgreSQL's thread. PGlite runs here, not on the main thread, so that PostgreSQL's work
 * (COPY above all) uses one core while the main thread reads, parses and encodes on the other. Requests
 * from pglite-driver.ts are answered one at a time, in the order they came.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { PGlite, Results } from '@electric-sql/pglite';
import type { CopyFormat } from './driver.ts';
import { openPglite, type WasmModule } from './pglite-open.ts';

export interface WorkerInput {
  readonly dir: string;
  /** PGlite's WebAssembly, compiled by the main thread. */
  readonly module: WasmModule;
}

export type Request =
  | { readonly id: number; readonly op: 'query'; readonly sql: string; readonly params: readonly unknown[] | undefined }
  | { readonly id: number; readonly op: 'script'; readonly sql: string }
  /**
   * One slice of a COPY: whole rows, `rows` of them, COPY text or binary (then with its header and trailer).
   * Slices of a failed COPY are not run.
   */
  | {
      readonly id: number;
      readonly op: 'copy';
      readonly copy: number;
      readonly target: string;
      readonly format: CopyFormat;
      readonly data: ArrayBuffer;
      readonly rows: number;
    }
  | { readonly id: number; readonly op: 'close' };

/** What tells the thread to open the database: its data directory is ready, or left to the thread to make. */
export interface OpenSignal {
  readonly op: 'open';
}

/** Id 0 answers the start: the database is open (value: how its directory was found or made). */
export type Reply =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: WireError };

export interface WireResult {
  /** Objects by field name (`query`), arrays in field order (`script`, rowMode 'array'). */
  readonly rows: Record<string, unknown>[] | unknown[][];
  readonly fields: readonly string[];
  readonly fieldTypes: readonly number[];
  readonly command?: string;
  readonly rowCount?: number;
}

/** An error as it crosses threads: structured cloning keeps an Error's message, not PostgreSQL's fields. */
export interface WireError {
  readonly name: string;
  readonly message: string;
  readonly fields: Readonly<Record<string, string | number>>;
}

/** Where a COPY slice is put for PostgreSQL to read: a file in PGlite's in-memory file system. */
const COPY_FILE = '/tmp/etl-copy';

/**
 * COPY of the whole rows in `data`, from a file in PGlite's in-memory file system that takes the buffer
 * as it is (`canOwn`). Not PGlite's `/dev/blob`: a Blob is copied in and read back (a fifth of the
 * COPY's time in a profile), and the device hands the rows to PostgreSQL a byte at a time (up to a
 * tenth). The row count PostgreSQL reports must be `rows`, the number sent.
 */
async function copy(db: PGlite, target: string, format: CopyFormat, data: ArrayBuffer, rows: number): Promise<number> {
  const fs = db.Module.FS;
  fs.writeFile(COPY_FILE, new Uint8Array(data), { canOwn: true });
  let copied: number;
  try {
    const options = format === 'binary' ? ' WITH (FORMAT binary)' : '';
    copied = (await db.query(`COPY ${target} FROM '${COPY_FILE}'${options}`)).affectedRows ?? 0;
  } finally {
    fs.unlink(COPY_FILE);
  }
  if (copied !== rows) throw new Error(`the embedded COPY took ${copied} rows of ${rows}`);
  return copied;
}

function toWire(result: Results): WireResult {
  const out: WireResult = {
    rows: result.rows as Record<string, unknown>[] | unknown[][],
    fields: result.fields.map((f) => f.name),
    fieldTypes: result.fields.map((f) => f.dataTypeID),
    ...(result.command === undefined ? {} : { command: result.command }),
  };
  return result.affectedRows === undefined ? out : { ...out, rowCount: result.affectedRows };
}

function wireError(error: unknown): WireError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error), fields: {} };
  const fields: Record<string, string | number> = {};
  for (const [key, value] of Object.entries(error)) {
    if (typeof value === 'string' || typeof value === 'number') fields[key] = value;
  }
  return { name: error.name, message: error.message, fields };
}

async function serve(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('pglite-worker.ts runs as a worker thread');
  const { dir, module } = workerData as WorkerInput;
  await new Promise<OpenSignal>((resolve) => port.once('message', resolve));
  let db: PGlite;
  try {
    const opened = await openPglite(dir, module);
    db = opened.db;
    port.postMessage({ id: 0, ok: true, value: opened.made } satisfies Reply);
  } catch (error) {
    port.postMessage({ id: 0, ok: false, error: wireError(error) } satisfies Reply);
    return;
  }
  let failedCopy: { readonly copy: number; readonly error: unknown } | undefined;
  const handle = async (request: Request): Promise<unknown> => {
    switch (request.op) {
      case 'query':
        return toWire(await db.query(request.sql, request.params as unknown[] | undefined));
      case 'script':
        return (await db.exec(request.sql, { rowMode: 'array' })).map(toWire);
      case 'copy': {
        if (failedCopy?.copy === request.copy) throw failedCopy.error;
        try {
          return await copy(db, request.target, request.format, request.data, request.rows);
        } catch (error) {
          failedCopy = { copy: request.copy, error };
          throw error;
        }
      }
      case 'close':
        await db.close();
        return undefined;
    }
  };
  let tail: Promise<void> = Promise.resolve();
  port.on('message', (request: Request) => {
    tail = tail.then(async () => {
      let reply: Reply;
      try {
        reply = { id: request.id, ok: true, value: await handle(request) };
      } catch (error) {
        reply = { id: request.id, ok: false, error: wireError(error) };
      }
      port.postMessage(reply);
    });
  });
}

await serve();
