/** Opening the embedded PostgreSQL (PGlite): its settings, its data directory, its file syncs. */
import { fsyncSync } from 'node:fs';
import { PGlite, type PGliteOptions } from '@electric-sql/pglite';
import { NodeFS } from '@electric-sql/pglite/nodefs';
import { ensureDataDir } from './template.ts';

/** PGlite's WebAssembly, compiled. */
export type WasmModule = NonNullable<PGliteOptions['pgliteWasmModule']>;

/**
 * How PostgreSQL runs embedded.
 * - fsync on (PGlite passes `-F`, fsync off): the checkpoint state is fsynced, the rows it counts must be
 *   too. PGlite's file system ignores fdatasync, PostgreSQL's default way to sync the WAL, and has no
 *   fsync of its own: the WAL is synced with fsync, which SyncedNodeFS makes reach the disk.
 * - shared_buffers 16 MB instead of 128 MB: the buffers are WebAssembly memory, zeroed at every start
 *   (by the module's memset: 145 MB of shared memory took 0.2–0.6 s of a start, 24 MB a sixth of that) and
 *   resident from then on, ~120 MiB saved. A COPY goes through a small ring of buffers whatever their
 *   number, and a scan reads pages the OS caches: loads measured no slower, within this machine's noise.
 * - wal_init_zero off: a new 16 MB WAL segment is not first written full of zeros (with fsync: 48 MB of
 *   writes for a 200k-line load). PostgreSQL then writes only its last byte; recovery already reads recycled
 *   segments full of old bytes and tells them apart by page header, and fsync syncs the blocks a write
 *   allocates. What changes is that a full disk fails a WAL write rather than the segment's creation: the
 *   run fails either way. Measured: the database thread's CPU time 6–17% lower for that load (binary COPY,
 *   3 interleaved pairs, loaded).
 */
export const START_PARAMS: readonly string[] = [
  ...PGlite.defaultStartParams.filter((p) => p !== '-F'),
  '-c',
  'wal_sync_method=fsync',
  '-c',
  'shared_buffers=16MB',
  '-c',
  'wal_init_zero=off',
];

/**
 * Opens (first making, see template.ts) the embedded database in `dir`; `module`: PGlite's WebAssembly,
 * already compiled; `settings`: more `name=value` settings for this start.
 */
export async function openPglite(
  dir: string,
  module?: WasmModule,
  settings: readonly string[] = [],
): Promise<{ db: PGlite; made: string }> {
  const made = await ensureDataDir(dir, async (fresh) => {
    // PGlite's initdb: for a template made by another PGlite version.
    const db = await create(fresh, module, []);
    await db.close();
  });
  const db = await create(dir, module, settings);
  await db.exec("SET TIME ZONE 'UTC'");
  return { db, made };
}

function create(dir: string, module: WasmModule | undefined, settings: readonly string[]): Promise<PGlite> {
  return PGlite.create({
    dataDir: dir,
    fs: new SyncedNodeFS(dir),
    startParams: [...START_PARAMS, ...settings.flatMap((setting) => ['-c', setting])],
    ...(module ? { pgliteWasmModule: module } : {}),
  });
}

type ModuleOptions = Parameters<NodeFS['init']>[1];
interface NodeFsStreamOps {
  fsync?: (stream: { nfd?: number }) => number;
}

/**
 * PGlite's NodeFS (Emscripten's NODEFS, which maps PostgreSQL's files onto the host's) has no fsync:
 * PostgreSQL's fsync calls returned without syncing anything. Its stream operations are shared by every
 * file it opens, so one operation added before PostgreSQL starts (crash recovery syncs too) syncs them all.
 */
class SyncedNodeFS extends NodeFS {
  override async init(pg: PGlite, options: ModuleOptions): Promise<{ emscriptenOpts: ModuleOptions }> {
    const { emscriptenOpts } = await super.init(pg, options);
    const installFsync = (mod: { NODEFS?: unknown }): void => {
      const ops = (mod.NODEFS as { stream_ops?: NodeFsStreamOps } | undefined)?.stream_ops;
      if (!ops) throw new Error('PGlite no longer exposes NODEFS: the embedded database could not sync its files');
      ops.fsync ??= (stream) => {
        if (stream.nfd !== undefined) fsyncSync(stream.nfd);
        return 0;
      };
    };
    return { emscriptenOpts: { ...emscriptenOpts, preRun: [...(emscriptenOpts.preRun ?? []), installFsync] } };
  }
}
