/**
 * A file's identity across renames and restarts: a hash of its first bytes (decompressed for gzip, so
 * `access.log.1` and its later `access.log.1.gz` are known as the same content). A file shorter than
 * the wanted length is fingerprinted by what it has, with that length recorded; the fingerprint is
 * completed once the file has grown, and an entry is compared by hashing as many bytes as it recorded.
 */
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { constants, gunzipSync } from 'node:zlib';

export interface Fingerprint {
  /** Hex of the first 16 bytes of a SHA-256 over the leading bytes. */
  readonly hash: string;
  /** How many leading bytes were hashed (less than wanted for short files). */
  readonly bytes: number;
}

export const GZIP_MAGIC_0 = 0x1f;
export const GZIP_MAGIC_1 = 0x8b;

/** Compressed bytes read to find the first decompressed bytes of a gzip file. */
const GZIP_PROBE_BYTES = 4096;

/** Leading content bytes, at most `want`. */
export async function leadingBytes(handle: FileHandle, compressed: boolean, want: number): Promise<Buffer> {
  if (!compressed) {
    const buf = Buffer.alloc(want);
    const { bytesRead } = await handle.read(buf, 0, want, 0);
    return buf.subarray(0, bytesRead);
  }
  const raw = Buffer.alloc(Math.max(GZIP_PROBE_BYTES, want));
  const { bytesRead } = await handle.read(raw, 0, raw.length, 0);
  try {
    // SYNC_FLUSH returns what a prefix of the stream decodes to instead of failing on the cut.
    const out = gunzipSync(raw.subarray(0, bytesRead), { finishFlush: constants.Z_SYNC_FLUSH });
    return out.subarray(0, Math.min(want, out.length));
  } catch {
    // Not decodable (corrupt header): the raw bytes still identify the file; reading will report the error.
    return raw.subarray(0, Math.min(want, bytesRead));
  }
}

export function hashBytes(bytes: Buffer): Fingerprint {
  return { hash: createHash('sha256').update(bytes).digest('hex').slice(0, 32), bytes: bytes.length };
}

export async function fingerprint(handle: FileHandle, compressed: boolean, want: number): Promise<Fingerprint> {
  return hashBytes(await leadingBytes(handle, compressed, want));
}

/** Whether the file is gzip (by its magic bytes, whatever its name) and its fingerprint; one read for a plain file. */
export async function identify(
  handle: FileHandle,
  want: number,
): Promise<{ compressed: boolean; fingerprint: Fingerprint }> {
  const head = Buffer.alloc(want);
  const { bytesRead } = await handle.read(head, 0, want, 0);
  if (bytesRead >= 2 && head[0] === GZIP_MAGIC_0 && head[1] === GZIP_MAGIC_1) {
    return { compressed: true, fingerprint: await fingerprint(handle, true, want) };
  }
  return { compressed: false, fingerprint: hashBytes(head.subarray(0, bytesRead)) };
}

/** Whether the file's first `expected.bytes` bytes hash to `expected.hash`; `current` is its own fingerprint. */
export async function sameContent(
  handle: FileHandle,
  compressed: boolean,
  current: Fingerprint,
  expected: Fingerprint,
): Promise<boolean> {
  if (current.bytes < expected.bytes) return false;
  if (current.bytes === expected.bytes) return current.hash === expected.hash;
  const prefix = await leadingBytes(handle, compressed, expected.bytes);
  return hashBytes(prefix).hash === expected.hash;
}
