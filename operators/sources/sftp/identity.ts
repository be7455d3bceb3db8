/**
 * What tells a remote file apart from another when SFTP has no inode: a hash of its first bytes (decompressed for
 * gzip, so that `access.log.1` and the later `access.log.2.gz` are one content). A file renamed by a rotation is
 * found under its new name by it, and a file rewritten under the same name is noticed by it.
 */
import { createHash } from 'node:crypto';
import type { SFTPWrapper } from 'ssh2';
import { constants, gunzipSync } from 'node:zlib';
import { RemoteRangeReader } from './range-reader.ts';

/** Bytes of a file's start that identify it; a file is known under another name only once it has this many. */
export const FINGERPRINT_BYTES = 1024;
/** Compressed bytes read to get FINGERPRINT_BYTES out of a gzip file (log text compresses 5–20 times). */
const GZIP_HEAD_BYTES = 64 * 1024;

export interface Head {
  /** Up to FINGERPRINT_BYTES of the file's (decompressed) start. */
  readonly bytes: Buffer;
}

/** The first bytes of `path` (`size` as listed), decompressed for gzip; empty when a gzip start does not inflate. */
export async function readHead(sftp: SFTPWrapper, path: string, size: number, gzip: boolean): Promise<Head> {
  const raw = await readRange(sftp, path, Math.min(size, gzip ? GZIP_HEAD_BYTES : FINGERPRINT_BYTES));
  if (!gzip) return { bytes: raw };
  try {
    // A cut stream inflates as far as it goes instead of failing (Z_SYNC_FLUSH at its end).
    const inflated = gunzipSync(raw, { finishFlush: constants.Z_SYNC_FLUSH });
    return { bytes: inflated.subarray(0, FINGERPRINT_BYTES) };
  } catch {
    return { bytes: Buffer.alloc(0) };
  }
}

/** The hash of the first `length` bytes of `head` (128 bits of SHA-256, hex). */
export function fingerprintOf(head: Head, length = head.bytes.length): string {
  return createHash('sha256').update(head.bytes.subarray(0, length)).digest('hex').slice(0, 32);
}

function readRange(sftp: SFTPWrapper, path: string, end: number): Promise<Buffer> {
  if (end === 0) return Promise.resolve(Buffer.alloc(0));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const reader = new RemoteRangeReader(sftp, path, 0, end);
    reader.on('data', (chunk: Buffer) => chunks.push(chunk));
    reader.once('error', reject);
    reader.once('end', () => resolve(Buffer.concat(chunks)));
  });
}
