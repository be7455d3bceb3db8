/**
 * The sftp source's checkpoint position: which remote files it has read, how far, and what each looked like then,
 * so that a rerun reads only what is new: the grown tail of a plain file, a file that appeared, or one replaced
 * under the same name. (The s3 source, built alongside, keeps its own ledger: object keys never grow.)
 */

export interface RemoteInput {
  /** The input's full name on the server (a remote path, an object key). */
  readonly path: string;
  /** Its size in bytes (compressed for gzip) when it was last read. */
  readonly size: number;
  /** Its modification time (ms since epoch) when it was last read: with `size`, what tells it was replaced. */
  readonly mtime_ms: number;
  /**
   * Offset (decompressed for gzip) of the first byte not yet emitted: the start of the next line. A plain input
   * that grew is read again from here; a gzip input is decompressed from its start and this much skipped.
   */
  readonly offset: number;
  /** Lines emitted so far; the next line is number `line + 1`. */
  readonly line: number;
  /** The offset lies inside an over-long line whose rest is being skipped. */
  readonly skipping?: true;
  /** Gzip only: read to its end (compressed inputs are read whole, never as a grown tail). */
  readonly complete?: true;
  /**
   * Hash of the file's first `fingerprint_bytes` bytes (decompressed for gzip; sftp only): a file renamed since is
   * found under its new name by it, a file rewritten under the same name noticed. Absent from older positions.
   */
  readonly fingerprint?: string;
  readonly fingerprint_bytes?: number;
  /**
   * The records' `input` origin (sftp only): the name the content was first read under, with `~<n>` when that name
   * held other content before; it moves with the file when it is renamed, so that the keys sinks de-duplicate on stay
   * the same for the same lines and differ for different ones.
   */
  readonly input?: string;
}

export interface RemoteInputsPosition {
  readonly inputs: readonly RemoteInput[];
  /** Sftp only: per name, the last `~<n>` given to content first read under it (0 without suffix). */
  readonly generations?: Readonly<Record<string, number>>;
}

/** The position handed back by the runtime, or what does not fit when it is not one of these. */
export function parseRemoteInputsPosition(value: unknown): { position?: RemoteInputsPosition; problem?: string } {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || !Array.isArray((value as { inputs?: unknown }).inputs)) {
    return { problem: `${clip(JSON.stringify(value))} has no list of inputs` };
  }
  const inputs: RemoteInput[] = [];
  for (const entry of (value as { inputs: unknown[] }).inputs) {
    if (!isRemoteInput(entry)) return { problem: `its entry ${clip(JSON.stringify(entry))} is not a remote input's` };
    inputs.push(entry);
  }
  const generations = (value as { generations?: unknown }).generations;
  if (generations !== undefined) {
    if (typeof generations !== 'object' || generations === null || !Object.values(generations).every(isCount)) {
      return { problem: `its generations ${clip(JSON.stringify(generations))} are not counts by name` };
    }
    return { position: { inputs, generations: generations as Record<string, number> } };
  }
  return { position: { inputs } };
}

function isRemoteInput(value: unknown): value is RemoteInput {
  if (typeof value !== 'object' || value === null) return false;
  const e = value as Record<string, unknown>;
  return (
    typeof e.path === 'string' &&
    isCount(e.size) &&
    typeof e.mtime_ms === 'number' &&
    Number.isFinite(e.mtime_ms) &&
    isCount(e.offset) &&
    isCount(e.line) &&
    (e.skipping === undefined || e.skipping === true) &&
    (e.complete === undefined || e.complete === true) &&
    (e.fingerprint === undefined || (typeof e.fingerprint === 'string' && isCount(e.fingerprint_bytes))) &&
    (e.input === undefined || typeof e.input === 'string')
  );
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function clip(text: string | undefined): string {
  const s = text ?? 'undefined';
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}
