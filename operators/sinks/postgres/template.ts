/**
 * A new embedded database starts as a copy of a data directory initialised once, not by PGlite's initdb:
 * initdb runs PostgreSQL's bootstrap in WebAssembly in a second PGlite instance, which took 10–17 s and
 * peaked at 1.1–1.3 GiB on a first run; unpacking this template takes a fraction of a second.
 *
 * The template ships with the code (template/pgdata.br, about 0.6 MB; `npm run pglite-template` remakes it),
 * so that a newcomer's very first `etl apply` after `npm ci` never runs initdb. A template made by another
 * PGlite version may not match its catalog: then PGlite's initdb makes the directory, as before. Either
 * way the directory is made under a temporary name and renamed into place, its files synced first, so a
 * crash leaves no half-made database behind.
 *
 * Format: Brotli over `[u32 manifest length][manifest JSON][contents]`. The three databases initdb makes
 * are nearly identical and many files end in zero pages: each distinct content is stored once, without
 * its trailing zeros, and files are extended to their size with truncate.
 */
import { createHash } from 'node:crypto';
import { closeSync, fsync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { open, readdir, readFile, rename, rm, rmdir, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { brotliCompressSync, brotliDecompress as brotliDecompressCallback, constants } from 'node:zlib';
import { EtlError } from '../../../engine/errors.ts';

export const TEMPLATE_PATH = join(import.meta.dirname, 'template', 'pgdata.br');
const brotliDecompress = promisify(brotliDecompressCallback);
const fsyncAsync = promisify(fsync);

interface Manifest {
  /** The PGlite version whose initdb made the directory. */
  readonly pglite: string;
  /** Directories, parents first, relative to the data directory. */
  readonly dirs: readonly string[];
  /** [path, size, offset, length]: the file's first `length` bytes are contents[offset…]; zeros after. */
  readonly files: ReadonlyArray<readonly [string, number, number, number]>;
}

/** The installed PGlite's version. */
export function pgliteVersion(): string {
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  const pkg = JSON.parse(readFileSync(join(dirname(entry), '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/**
 * Makes `dir` a PostgreSQL data directory unless it is one already: from the template, or with `initdb`
 * (given a fresh directory to initialise) when the template was made by another PGlite version; without
 * `initdb`, that case leaves `dir` as it is (`missing`). The caller holds the directory's lock.
 */
export async function ensureDataDir(
  dir: string,
  initdb: ((dir: string) => Promise<void>) | undefined,
  archive = TEMPLATE_PATH,
): Promise<'existing' | 'template' | 'initdb' | 'missing'> {
  if (await exists(join(dir, 'PG_VERSION'))) return 'existing';
  if (await exists(dir)) {
    if ((await readdir(dir)).length > 0) {
      throw new EtlError(
        'ETL_RUN_SINK_FAILED',
        `${dir} is not empty but holds no PostgreSQL database (no PG_VERSION): move it away, or give the ` +
          'pipeline another data_dir',
      );
    }
    await rmdir(dir);
  }
  await removeLeftovers(dir);
  const tmp = `${dir}${TMP_SUFFIX}${process.pid}`;
  try {
    const manifest = await unpackTemplate(tmp, archive);
    if (manifest === undefined && initdb === undefined) return 'missing';
    if (manifest === undefined) await initdb?.(tmp);
    await syncDir(tmp);
    await rename(tmp, dir);
    await syncDir(dirname(dir));
    return manifest === undefined ? 'initdb' : 'template';
  } catch (error) {
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
    throw error;
  }
}

const TMP_SUFFIX = '.creating-';
/** Files written before their syncs are awaited (two chunks open at most). */
const FILES_PER_CHUNK = 256;

/** Directories a process killed while making `dir` left behind (the lock says none is making it now). */
async function removeLeftovers(dir: string): Promise<void> {
  const parent = dirname(dir);
  const prefix = `${basename(dir)}${TMP_SUFFIX}`;
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    if (name.startsWith(prefix)) await rm(join(parent, name), { recursive: true, force: true });
  }
}

/**
 * Unpacks the shipped template into `dir` (which must not exist), files synced: its manifest, or
 * undefined (nothing written) when there is none for the installed PGlite version.
 */
export async function unpackTemplate(dir: string, archive = TEMPLATE_PATH): Promise<Manifest | undefined> {
  let packed: Buffer;
  try {
    packed = await readFile(archive);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  // On libuv's thread pool: the thread that opens the database starts meanwhile (pglite-driver.ts).
  const raw = await brotliDecompress(packed);
  const manifestLength = raw.readUInt32BE(0);
  const manifest = JSON.parse(raw.toString('utf8', 4, 4 + manifestLength)) as Manifest;
  if (manifest.pglite !== pgliteVersion()) return undefined;
  const contents = raw.subarray(4 + manifestLength);
  // Files are made with synchronous calls and synced on libuv's threads while the next ones are written: a
  // promise for each open, write, truncate, sync and close of ~970 files took 0.55–0.85 s (loaded), this
  // 0.3 s. The thread that opens the database boots meanwhile. At most two chunks of files are open at once.
  mkdirSync(dir, { mode: 0o700 });
  for (const sub of manifest.dirs) mkdirSync(join(dir, sub), { mode: 0o700 });
  let syncing: Promise<void> = Promise.resolve();
  for (let start = 0; start < manifest.files.length; start += FILES_PER_CHUNK) {
    const fds: number[] = [];
    try {
      for (const [path, size, offset, length] of manifest.files.slice(start, start + FILES_PER_CHUNK)) {
        const fd = openSync(join(dir, path), 'wx', 0o600);
        fds.push(fd);
        if (length > 0) writeSync(fd, contents, offset, length, 0);
        if (size > length) ftruncateSync(fd, size);
      }
    } catch (error) {
      for (const fd of fds) closeSync(fd);
      await syncing.catch(() => {});
      throw error;
    }
    await syncing;
    syncing = inParallel(fds, 16, (fd) => fsyncAsync(fd)).finally(() => {
      for (const fd of fds) closeSync(fd);
    });
  }
  await syncing;
  for (const sub of [...manifest.dirs].reverse()) await syncDir(join(dir, sub));
  return manifest;
}

/** Packs the data directory `dir` (a cleanly shut down PostgreSQL) as made by PGlite `version`. */
export async function packTemplate(dir: string, version: string): Promise<Buffer> {
  const dirs: string[] = [];
  const files: Array<[string, number, number, number]> = [];
  const contents: Buffer[] = [];
  const seen = new Map<string, number>();
  let offset = 0;
  const walk = async (sub: string): Promise<void> => {
    const entries = (await readdir(join(dir, sub), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const entry of entries) {
      const path = sub === '' ? entry.name : `${sub}/${entry.name}`;
      if (entry.isDirectory()) {
        dirs.push(path);
        await walk(path);
        continue;
      }
      const bytes = await readFile(join(dir, path));
      let end = bytes.length;
      while (end > 0 && bytes[end - 1] === 0) end--;
      const kept = bytes.subarray(0, end);
      const hash = createHash('sha256').update(kept).digest('hex');
      let at = seen.get(hash);
      if (at === undefined) {
        at = offset;
        seen.set(hash, at);
        contents.push(kept);
        offset += kept.length;
      }
      files.push([path, bytes.length, at, kept.length]);
    }
  };
  await walk('');
  const manifest = Buffer.from(JSON.stringify({ pglite: version, dirs, files } satisfies Manifest));
  const header = Buffer.alloc(4);
  header.writeUInt32BE(manifest.length);
  return brotliCompressSync(Buffer.concat([header, manifest, ...contents]), {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
      // A window as large as a database: the second and third copy of a catalog cost almost nothing.
      [constants.BROTLI_PARAM_LGWIN]: constants.BROTLI_MAX_WINDOW_BITS,
    },
  });
}

async function syncDir(dir: string): Promise<void> {
  // Windows cannot open a directory to sync it; its NTFS journals the rename itself.
  if (process.platform === 'win32') return;
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

async function inParallel<T>(items: readonly T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane));
}
