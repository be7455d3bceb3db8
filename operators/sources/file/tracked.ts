/** One file the source knows: its identity, reading state and open descriptor. */
import type { FileHandle } from 'node:fs/promises';
import type { ChunkReader, StreamReader } from './chunks.ts';
import type { Fingerprint } from './fingerprint.ts';
import type { LineCursor } from './lines.ts';
import type { FileEntry } from './position.ts';
import type { PumpState } from './pump.ts';

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
  fingerprint: Fingerprint;
  status: FileStatus;
  duplicate: boolean;
  /** Gzip stream read to its end. */
  complete: boolean;
  handle: FileHandle | null;
  reader: ChunkReader | null;
  gzip: StreamReader | null;
  /** Size of the file when last looked at (raw bytes). */
  size: number;
  /** Last time bytes were read from it, or it was admitted (ms since epoch). */
  lastGrowth: number;
  rotatedAt: number;
  /** The last read of a followed file reached its end (at `size`). */
  atEof: boolean;
}

export function keyOf(dev: number, ino: number): string {
  return `${dev}:${ino}`;
}

export function entryOf(t: Tracked): FileEntry {
  const entry: {
    -readonly [K in keyof FileEntry]: FileEntry[K];
  } = {
    path: t.path,
    dev: t.dev,
    ino: t.ino,
    fingerprint: t.fingerprint.hash,
    fingerprint_bytes: t.fingerprint.bytes,
    offset: t.cursor.offset,
    line: t.cursor.line,
  };
  if (t.cursor.skipping) entry.skipping = true;
  if (t.complete) entry.complete = true;
  if (t.duplicate) entry.duplicate = true;
  return entry;
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
