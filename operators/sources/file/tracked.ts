/** One file the source knows: its identity, reading state and open descriptor. */
import type { FileHandle } from 'node:fs/promises';
import type { ChunkReader, GzipCheck, StreamReader } from '../../shared/line-reader/chunks.ts';
import type { Fingerprint } from './fingerprint.ts';
import type { LineCursor } from '../../shared/line-reader/lines.ts';
import type { FileEntry } from './position.ts';
import type { PumpState } from '../../shared/line-reader/pump.ts';

/**
 * `reading`: visible under a matching path, read as it grows. `rotated`: no matching path leads to it
 * any more (renamed away, deleted); read through its descriptor until it has been quiet for
 * rotate_wait_ms. `done`: nothing left to read (file read to its end without follow, gzip complete,
 * duplicate). `failed`: a read error; kept at its offset and tried again when it changes.
 */
export type FileStatus = 'reading' | 'rotated' | 'done' | 'failed';

export interface Tracked extends PumpState {
  readonly cursor: LineCursor;
  /** Order of admission: of two files at one path, the older (rotated) one is read first. */
  readonly seq: number;
  readonly dev: number;
  readonly ino: number;
  readonly compressed: boolean;
  path: string;
  /** The `input` origin of its first content (see inputOf); `generation` tells later contents apart. */
  readonly input: string;
  /** Times its content was replaced in place and read again from the start (FileEntry.generation). */
  generation: number;
  fingerprint: Fingerprint;
  status: FileStatus;
  duplicate: boolean;
  /** Gzip stream read to its end. */
  complete: boolean;
  /** Open descriptor; in follow mode only files read recently (or rotated away) keep one. */
  handle: FileHandle | null;
  reader: ChunkReader | null;
  gzip: StreamReader | null;
  /** Checking a whole gzip file, started ahead of reading it (against a checkpoint, or while another is read). */
  gzipCheck: Promise<GzipCheck> | null;
  /** Follow mode: a compressed file found cut short (being written?) since then, ms since epoch; else 0. */
  incompleteSince: number;
  /** Size of the file when last looked at (raw bytes). */
  size: number;
  /** Its modification time then (ms since epoch), recorded with the size in the position. */
  mtimeMs: number;
  /** Last time bytes were read from it, or it was admitted (ms since epoch). */
  lastGrowth: number;
  rotatedAt: number;
  /** The last read of a followed file reached its end (at `size`). */
  atEof: boolean;
  /** Follow mode: an event or a check says it may have changed; looked at in the next turn. */
  dirty: boolean;
  /**
   * The file's first bytes as the reader read them, while its fingerprint is shorter than fingerprint_bytes and
   * reading started at 0: the fingerprint grows from what was read, not from what the file holds by then.
   */
  head: Buffer | null;
  /** The last entry built for the position, reused while nothing in it changed. */
  entry: FileEntry | null;
}

export function keyOf(dev: number, ino: number): string {
  return `${dev}:${ino}`;
}

export function entryOf(t: Tracked): FileEntry {
  const c = t.cursor;
  const e = t.entry;
  if (
    e !== null &&
    e.offset === c.offset &&
    e.line === c.line &&
    e.path === t.path &&
    e.size === t.size &&
    e.mtime_ms === t.mtimeMs &&
    e.fingerprint === t.fingerprint.hash &&
    e.fingerprint_bytes === t.fingerprint.bytes &&
    (e.skipping === true) === c.skipping &&
    (e.complete === true) === t.complete &&
    (e.duplicate === true) === t.duplicate &&
    (e.generation ?? 0) === t.generation
  ) {
    return e;
  }
  const entry: {
    -readonly [K in keyof FileEntry]: FileEntry[K];
  } = {
    path: t.path,
    dev: t.dev,
    ino: t.ino,
    fingerprint: t.fingerprint.hash,
    fingerprint_bytes: t.fingerprint.bytes,
    offset: c.offset,
    line: c.line,
    size: t.size,
    mtime_ms: t.mtimeMs,
  };
  if (c.skipping) entry.skipping = true;
  if (t.complete) entry.complete = true;
  if (t.duplicate) entry.duplicate = true;
  if (t.generation > 0) entry.generation = t.generation;
  t.entry = entry;
  return entry;
}

/** Starts a new generation of the file's content: its lines get keys of their own from offset 0 on. */
export function setGeneration(t: Tracked, generation: number): void {
  t.generation = generation;
  t.cursor.input = generation > 0 ? `${t.input}~${generation}` : t.input;
}

/** Where the next read of a plain file starts: after what was consumed and the carried partial line. */
export function readPosition(t: Tracked): number {
  return t.cursor.offset + (t.carry?.length ?? 0);
}

export async function closeTracked(t: Tracked): Promise<void> {
  t.gzip?.destroy();
  t.gzip = null;
  t.reader = null;
  const handle = t.handle;
  t.handle = null;
  await handle?.close().catch(() => {});
}

/**
 * The records' `input` origin for a file: device and inode, which a rotation's rename keeps, and the creation time
 * where the file system has one, so that a file made later on a reused inode is another input.
 */
export function inputOf(st: { readonly dev: number; readonly ino: number; readonly birthtimeMs: number }): string {
  const born = Math.trunc(st.birthtimeMs);
  return born > 0 ? `${st.dev}:${st.ino}:${born}` : `${st.dev}:${st.ino}`;
}
