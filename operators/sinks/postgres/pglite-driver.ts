/**
 * The embedded PostgreSQL (PGlite): one session per process, guarded by a pid lock. PGlite runs in a
 * worker thread (pglite-worker.ts) so that PostgreSQL and the pipeline use both cores; what crosses
 * between them is SQL, results, and COPY rows as transferred bytes, never records.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { createRequire, getCompileCacheDir } from 'node:module';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import type { CopyFormat, CopyWriter, Database, QueryResult, ScriptResult, Session } from './driver.ts';
import { BINARY_HEADER, BINARY_TRAILER } from './binary-buffer.ts';
import { countCopyRows } from './copy-rows.ts';
import { EmbeddedLock } from './lock.ts';
import type { WasmModule } from './pglite-open.ts';
import type { OpenSignal, Reply, Request, WireError, WorkerInput } from './pglite-worker.ts';
import { ensureDataDir } from './template.ts';

/**
 * Databases open in this process, by data directory. Several postgres sinks (of one pipeline, or of pipelines
 * that `etl serve` runs side by side) may name the same embedded database: they share its one thread and
 * backend (`Backend` below), and the pid lock is taken once.
 */
const openDatabases = new Map<string, { database: Promise<EmbeddedDatabase>; users: number }>();

/** `holder` names this process in the refusal another process gets (`etl quickstart/store`). */
export async function openEmbedded(dir: string, holder: string): Promise<Database> {
  let entry = openDatabases.get(dir);
  if (!entry) {
    const opening = openFirst(dir, holder);
    entry = { database: opening, users: 0 };
    openDatabases.set(dir, entry);
    opening.catch(() => openDatabases.delete(dir));
  }
  entry.users++;
  const shared = entry;
  try {
    return new DatabaseUse(await shared.database, shared);
  } catch (error) {
    shared.users--;
    throw error;
  }
}

async function openFirst(dir: string, holder: string): Promise<EmbeddedDatabase> {
  const lock = new EmbeddedLock(dir, holder);
  await mkdir(dirname(dir), { recursive: true });
  await lock.acquire();
  try {
    return new EmbeddedDatabase(dir, await DatabaseThread.start(dir), lock);
  } catch (error) {
    await lock.release();
    throw error;
  }
}

/** One user's handle on a shared embedded database: closing it closes the database once no user is left. */
class DatabaseUse implements Database {
  readonly kind = 'embedded' as const;
  readonly label: string;
  private readonly database: EmbeddedDatabase;
  private readonly entry: { users: number };
  private closed = false;

  constructor(database: EmbeddedDatabase, entry: { users: number }) {
    this.database = database;
    this.entry = entry;
    this.label = database.label;
  }

  get shared(): boolean {
    return this.entry.users > 1;
  }

  session(): Promise<Session> {
    if (this.closed) return Promise.reject(new Error(`database ${this.label} is closed`));
    return this.database.session();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (--this.entry.users > 0) return;
    openDatabases.delete(this.database.dir);
    await this.database.close();
  }
}

interface Boot {
  readonly entry: string;
  readonly compileCache: string | undefined;
}

/**
 * A worker thread does not share the process's module compile cache (which `etl` turns on): the boot
 * script turns it on before the first TypeScript module loads, so that a thread starts from cached code
 * rather than stripping types and compiling again (measured: 0.25–0.35 s for a first thread instead of
 * 0.4–0.6 s, 80 ms instead of 0.15–0.3 s for the next ones).
 */
const BOOT = `
const { enableCompileCache } = require('node:module');
const { workerData } = require('node:worker_threads');
if (workerData.compileCache) enableCompileCache(workerData.compileCache);
import(workerData.entry);
`;

/** A request without its id (`request` assigns it), member by member. */
type WithoutId<R> = R extends unknown ? Omit<R, 'id'> : never;
type Call = WithoutId<Request>;

/** The PGlite thread's name (at most 15 bytes: Linux keeps no more of a thread's name). */
export const THREAD_NAME = 'etl-pglite';

/** The worker thread PGlite runs in, and the requests waiting for its answers. */
class DatabaseThread {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, { resolve(value: unknown): void; reject(error: unknown): void }>();
  private nextId = 1;
  /** Why the thread can no longer answer. */
  private stopped: Error | undefined;

  private constructor(worker: Worker) {
    this.worker = worker;
  }

  static async start(dir: string): Promise<DatabaseThread> {
    const worker = new Worker(BOOT, {
      eval: true,
      // The thread's name in `top -H` and /proc/<pid>/task/*/comm: its CPU time can be told from the pipeline's.
      name: THREAD_NAME,
      workerData: {
        dir,
        module: await compiledPglite(),
        entry: new URL('./pglite-worker.ts', import.meta.url).href,
        compileCache: getCompileCacheDir(),
      } satisfies WorkerInput & Boot,
    });
    // A new data directory is unpacked from the template now, while the thread boots (importing PGlite takes
    // as long; unpacking first made the thread wait): it opens the database once told the directory is there.
    const made = ensureDataDir(dir, undefined);
    made.catch(() => {});
    const thread = new DatabaseThread(worker);
    worker.on('message', (reply: Reply) => thread.settle(reply));
    worker.on('error', (error: unknown) => thread.stop(error instanceof Error ? error : new Error(String(error))));
    worker.on('exit', (code) => thread.stop(new Error(`the embedded database's thread exited (code ${code})`)));
    const started = new Promise<DatabaseThread>((resolve, reject) => {
      thread.waiting.set(0, {
        resolve: () => {
          thread.idle();
          resolve(thread);
        },
        reject: (error) => {
          void worker.terminate();
          reject(error);
        },
      });
    });
    made.then(
      () => worker.postMessage({ op: 'open' } satisfies OpenSignal),
      (error: unknown) => thread.stop(error instanceof Error ? error : new Error(String(error))),
    );
    return started;
  }

  get broken(): boolean {
    return this.stopped !== undefined;
  }

  request(call: Call, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.stopped) return Promise.reject(this.stopped);
    const id = this.nextId++;
    // Referenced only while a request waits: an idle database keeps no process alive, a busy one does.
    if (this.waiting.size === 0) this.worker.ref();
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ ...call, id }, transfer);
    });
  }

  async close(): Promise<void> {
    if (!this.stopped) await this.request({ op: 'close' }).catch(() => {});
    await this.worker.terminate();
  }

  private settle(reply: Reply): void {
    const waiter = this.waiting.get(reply.id);
    if (!waiter) return;
    this.waiting.delete(reply.id);
    if (this.waiting.size === 0) this.idle();
    if (reply.ok) waiter.resolve(reply.value);
    else waiter.reject(fromWire(reply.error));
  }

  private stop(error: Error): void {
    this.stopped ??= error;
    for (const waiter of this.waiting.values()) waiter.reject(this.stopped);
    this.waiting.clear();
  }

  private idle(): void {
    this.worker.unref();
  }
}

// The global is there at run time; the types this project compiles with (ES2024, node) do not declare it.
declare const WebAssembly: { compile(bytes: Uint8Array): Promise<WasmModule> };
let compiled: Promise<WasmModule> | undefined;

/**
 * PGlite's WebAssembly, compiled once per process and handed to every thread that opens a database: a
 * thread that compiled its own would also redo V8's optimisation of the hot functions; a process that
 * opens databases one after the other (`etl query` in tests, a test suite) measured 4–5 s per open
 * instead of 0.4–0.6 s.
 */
function compiledPglite(): Promise<WasmModule> {
  compiled ??= (async () => {
    // PGlite is 9 MB of WebAssembly. V8 runs it as compiled by Liftoff, then recompiles its hot functions with
    // TurboFan in the background: ~500 MiB more memory, a core taken from parsing, and an exit that waits
    // seconds for compile jobs, for code measured no faster over a 200k-line load. The flags are read when a
    // module compiles, so setting them now (the process compiles no other WebAssembly) keeps it on Liftoff.
    setFlagsFromString('--no-wasm-tier-up --no-wasm-dynamic-tiering');
    const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
    return WebAssembly.compile(await readFile(new URL('pglite.wasm', pathToFileURL(entry))));
  })();
  return compiled;
}

/** The error the worker saw, with PostgreSQL's fields (code, where, detail…) where it had them. */
function fromWire(wire: WireError): Error {
  const error = new Error(wire.message);
  Object.assign(error, wire.fields);
  error.name = wire.name;
  return error;
}

class EmbeddedDatabase implements Database {
  readonly kind = 'embedded' as const;
  readonly label: string;
  readonly dir: string;
  private readonly thread: DatabaseThread;
  private readonly backend = new Backend();
  private readonly lock: EmbeddedLock;
  private copies = 0;
  private closing: Promise<void> | undefined;

  constructor(dir: string, thread: DatabaseThread, lock: EmbeddedLock) {
    this.dir = dir;
    this.label = `embedded ${dir}`;
    this.thread = thread;
    this.lock = lock;
  }

  async session(): Promise<Session> {
    if (this.closing) throw new Error(`database ${this.label} is closed`);
    return new EmbeddedSession(this.thread, this.backend, () => ++this.copies);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.thread.close();
      } finally {
        await this.lock.release();
      }
    })();
    return this.closing;
  }
}

/**
 * PGlite is one PostgreSQL backend: a statement of one session sent while another session is inside a
 * transaction would run in that transaction. So a session holds the backend from BEGIN to COMMIT or ROLLBACK,
 * and for the length of each statement outside a transaction; other sessions queue, first come first served.
 * Holding it across a transaction is what the postgres sink's commit-only mode (`Database.shared`) keeps short.
 */
class Backend {
  private holder: object | undefined;
  private readonly queue: Array<{ who: object; resolve(): void }> = [];

  acquire(who: object): Promise<void> {
    if (this.holder === undefined) {
      this.holder = who;
      return Promise.resolve();
    }
    if (this.holder === who) return Promise.resolve();
    return new Promise((resolve) => this.queue.push({ who, resolve }));
  }

  release(who: object): void {
    if (this.holder !== who) return;
    const next = this.queue.shift();
    this.holder = next?.who;
    next?.resolve();
  }
}

/** How a COPY takes and gives back the backend for its session. */
interface BackendHold {
  acquire(): Promise<void>;
  release(): void;
}

const BEGINS = /^\s*(BEGIN|START\s+TRANSACTION)\b/i;
const ENDS = /^\s*(COMMIT|END|ABORT|ROLLBACK(?!\s+TO\b))\b/i;

/**
 * A session on the one backend: it holds the backend (`Backend`) while it is inside a transaction it began,
 * and for each statement or COPY outside one.
 */
class EmbeddedSession implements Session {
  private readonly thread: DatabaseThread;
  private readonly backend: Backend;
  private readonly copyId: () => number;
  private inTransaction = false;

  constructor(thread: DatabaseThread, backend: Backend, copyId: () => number) {
    this.thread = thread;
    this.backend = backend;
    this.copyId = copyId;
  }

  get broken(): boolean {
    return this.thread.broken;
  }

  query(sql: string, params?: readonly unknown[]): Promise<QueryResult> {
    return this.holding(sql, () => this.thread.request({ op: 'query', sql, params }) as Promise<QueryResult>);
  }

  script(sql: string): Promise<ScriptResult[]> {
    return this.holding(sql, () => this.thread.request({ op: 'script', sql }) as Promise<ScriptResult[]>);
  }

  copyIn(target: string, format: CopyFormat = 'text'): CopyWriter {
    return new EmbeddedCopy(this.thread, target, format, this.copyId(), {
      acquire: () => (this.inTransaction ? Promise.resolve() : this.backend.acquire(this)),
      release: () => {
        if (!this.inTransaction) this.backend.release(this);
      },
    });
  }

  /**
   * A session given up inside its transaction (a load that failed mid-COPY) cannot close a connection of its own
   * to roll it back, as a server's would: the transaction is rolled back on the one backend, after whatever this
   * session has queued there, so that the other users of a shared database are not left waiting behind it.
   */
  release(): void {
    if (!this.inTransaction) {
      this.backend.release(this);
      return;
    }
    this.inTransaction = false;
    void this.thread
      .request({ op: 'query', sql: 'ROLLBACK', params: undefined })
      .catch(() => {})
      .finally(() => this.backend.release(this));
  }

  /** Runs `statement` holding the backend; a BEGIN keeps holding it until the transaction ends. */
  private async holding<T>(sql: string, statement: () => Promise<T>): Promise<T> {
    await this.backend.acquire(this);
    const begins = BEGINS.test(sql);
    const ends = ENDS.test(sql);
    try {
      const result = await statement();
      if (begins) this.inTransaction = true;
      return result;
    } finally {
      // A failed COMMIT ends the transaction too; a failed statement inside one leaves it to be rolled back.
      if (ends) this.inTransaction = false;
      if (!this.inTransaction) this.backend.release(this);
    }
  }
}

/**
 * Rows are gathered into slices of about this size, each one `COPY … FROM <file>` on the thread (PGlite
 * reads a whole file, not a stream; a binary slice has a header and trailer of its own). Small enough that
 * the thread starts on a slice while the next is encoded; large enough that a statement per slice costs
 * nothing.
 */
const SLICE_BYTES = 1 << 20;
/** Slices sent but not yet copied; `write` waits beyond this (backpressure). */
const MAX_SLICES_IN_FLIGHT = 4;

/**
 * One COPY: slices go to the thread as they fill and are copied there while the caller encodes more. A
 * slice's failure surfaces at a later `write` or at `end`, as a server's would; the thread skips the
 * slices that follow a failed one.
 */
class EmbeddedCopy implements CopyWriter {
  private readonly thread: DatabaseThread;
  private readonly target: string;
  private readonly format: CopyFormat;
  private readonly id: number;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  /** Rows in `pending`, counted here rather than on the database's thread, which is the busier one. */
  private pendingRows = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private rows = 0;
  private failure: unknown;
  private ending: Promise<number> | undefined;
  private readonly hold: BackendHold;
  /** Resolves once this COPY holds the backend (at once inside the session's transaction). */
  private held: Promise<void> | undefined;
  private letGo = false;

  constructor(thread: DatabaseThread, target: string, format: CopyFormat, id: number, hold: BackendHold) {
    this.thread = thread;
    this.target = target;
    this.format = format;
    this.id = id;
    this.hold = hold;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (this.ending) throw new Error('COPY already ended');
    const rows = countCopyRows(chunk, this.format);
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.pendingRows += rows;
    if (this.pendingBytes >= SLICE_BYTES) this.send();
    while (this.inFlight.size >= MAX_SLICES_IN_FLIGHT) await Promise.race(this.inFlight);
    if (this.failure !== undefined) throw this.failure;
  }

  end(): Promise<number> {
    this.ending ??= (async () => {
      this.send();
      while (this.inFlight.size > 0) await Promise.race(this.inFlight);
      this.releaseBackend();
      if (this.failure !== undefined) throw this.failure;
      return this.rows;
    })();
    return this.ending;
  }

  private releaseBackend(): void {
    if (this.letGo || this.held === undefined) return;
    this.letGo = true;
    this.hold.release();
  }

  /** Sends the pending rows as one slice, copied into a buffer of their own that is transferred. */
  private send(): void {
    if (this.pendingBytes === 0) return;
    const binary = this.format === 'binary';
    const framing = binary ? BINARY_HEADER.length + BINARY_TRAILER.length : 0;
    // Not zero-filled first, and not from Buffer's shared pool: the whole ArrayBuffer is the slice.
    const view = Buffer.allocUnsafeSlow(this.pendingBytes + framing);
    const data = view.buffer as ArrayBuffer;
    let at = 0;
    if (binary) at += BINARY_HEADER.copy(view, at);
    for (const chunk of this.pending) {
      view.set(chunk, at);
      at += chunk.length;
    }
    if (binary) BINARY_TRAILER.copy(view, at);
    const rows = this.pendingRows;
    this.pending = [];
    this.pendingBytes = 0;
    this.pendingRows = 0;
    this.held ??= this.hold.acquire();
    const sent: Promise<void> = this.held
      .then(() =>
        this.thread.request({ op: 'copy', copy: this.id, target: this.target, format: this.format, data, rows }, [
          data,
        ]),
      )
      .then(
        (copied) => {
          this.rows += copied as number;
        },
        (error: unknown) => {
          this.failure ??= error;
          // A COPY outside a transaction that failed is over: a caller may never call `end`.
          this.releaseBackend();
        },
      )
      .finally(() => this.inFlight.delete(sent));
    this.inFlight.add(sent);
  }
}
