/** The file source's checkpoint position: per file, its identity and how far it was read. */

export interface FileEntry {
  /** Path the file had when the position was taken. */
  readonly path: string;
  readonly dev: number;
  readonly ino: number;
  /** Hash of the first `fingerprint_bytes` bytes (decompressed for gzip). */
  readonly fingerprint: string;
  readonly fingerprint_bytes: number;
  /** Offset (decompressed) of the first byte not yet emitted: the start of the next line. */
  readonly offset: number;
  /** Lines emitted so far. */
  readonly line: number;
  /** The offset lies inside an over-long line whose rest is being skipped. */
  readonly skipping?: true;
  /** Gzip only: the stream was read to its end (compressed files do not grow). */
  readonly complete?: true;
  /** A copy of content already read under another entry: never read. */
  readonly duplicate?: true;
  /**
   * Content a truncation removed from the file at `path` (copytruncate), as far as it had been read: a file with
   * the same first bytes under another inode is its copy, and continues at `offset`.
   */
  readonly truncated?: true;
  /**
   * How many times the file was read again from its start because its content was replaced in place (copytruncate,
   * truncate-and-refill); absent for 0. Part of the records' `input` origin, so that the new content's lines do not
   * get the keys of the old content's lines at the same offsets (sinks de-duplicate on those keys).
   */
  readonly generation?: number;
  /**
   * Size (raw bytes) and modification time (ms since epoch) of the file when it was last looked at: an offset
   * beyond the size of a file modified since means the file shrank; of one not modified since, that the
   * checkpoint does not belong to it. Absent from older positions.
   */
  readonly size?: number;
  readonly mtime_ms?: number;
}

export interface FilePosition {
  readonly files: readonly FileEntry[];
}

/** The position handed back by the runtime, or undefined with what does not fit when it is not one of ours. */
export function parsePosition(value: unknown): { position?: FilePosition; problem?: string } {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || !Array.isArray((value as { files?: unknown }).files)) {
    return { problem: `${clip(JSON.stringify(value))} has no list of files` };
  }
  const files: FileEntry[] = [];
  for (const entry of (value as { files: unknown[] }).files) {
    if (!isEntry(entry)) return { problem: `its entry ${clip(JSON.stringify(entry))} is not a file's` };
    files.push(entry);
  }
  return { position: { files } };
}

function clip(text: string | undefined): string {
  const s = text ?? 'undefined';
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}

function isEntry(value: unknown): value is FileEntry {
  if (typeof value !== 'object' || value === null) return false;
  const e = value as Record<string, unknown>;
  return (
    typeof e.path === 'string' &&
    isCount(e.dev) &&
    isCount(e.ino) &&
    typeof e.fingerprint === 'string' &&
    isCount(e.fingerprint_bytes) &&
    isCount(e.offset) &&
    isCount(e.line) &&
    (e.size === undefined || isCount(e.size)) &&
    (e.mtime_ms === undefined || (typeof e.mtime_ms === 'number' && Number.isFinite(e.mtime_ms))) &&
    (e.truncated === undefined || e.truncated === true) &&
    (e.generation === undefined || isCount(e.generation))
  );
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
