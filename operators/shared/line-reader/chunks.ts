/**
 * Byte inputs the line pump reads from: a file descriptor read at explicit positions (plain files, so
 * the fd survives a rename), or a Readable stream (gunzip output, stdin), both behind one interface.
 */
import type { FileHandle } from 'node:fs/promises';
import { type Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream';
import { pipeline as pipelinePromise } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';

export interface ChunkReader {
  /**
   * Reads up to `length` bytes into `buf` at `offset`. 0 means nothing more for now: end of file (a
   * followed file may grow later), end of stream, or `signal` aborted while waiting.
   */
  read(buf: Buffer, offset: number, length: number, signal?: AbortSignal): Promise<number>;
  /** Bytes of the underlying file consumed so far (compressed bytes for gzip), for progress. */
  readonly rawBytes: number;
}

/** A read after a pause this long (a slow sink, the other files' turns) first checks the file is still the same. */
const VERIFY_AFTER_MS = 100;

export interface FdReaderHooks {
  /** Sees every read's bytes (a view of the buffer, valid during the call) with the file position they came from. */
  observe?(position: number, bytes: Buffer): void;
  /**
   * Before a read that follows a pause: false when the file is no longer the one being read at `position` (it
   * was truncated, and maybe refilled past it); the read then reports the end of the file.
   */
  verify?(position: number): Promise<boolean>;
  /** Verify before the first read too: the file was identified some time before it is read. */
  verifyFirst?: boolean;
}

/** Reads a plain file by position, so the offset is ours and a rotation never moves it. */
export class FdReader implements ChunkReader {
  private readonly handle: FileHandle;
  position: number;
  private readonly onRead: ((bytes: number) => void) | undefined;
  private readonly hooks: FdReaderHooks;
  private lastRead: number;

  constructor(handle: FileHandle, position: number, onRead?: (bytes: number) => void, hooks: FdReaderHooks = {}) {
    this.handle = handle;
    this.position = position;
    this.onRead = onRead;
    this.hooks = hooks;
    this.lastRead = hooks.verifyFirst ? Number.NEGATIVE_INFINITY : performance.now();
  }

  get rawBytes(): number {
    return this.position;
  }

  async read(buf: Buffer, offset: number, length: number): Promise<number> {
    const from = this.position;
    const verify = this.hooks.verify;
    if (verify && performance.now() - this.lastRead >= VERIFY_AFTER_MS && !(await verify(from))) return 0;
    const { bytesRead } = await this.handle.read(buf, offset, length, from);
    this.lastRead = performance.now();
    this.position += bytesRead;
    if (bytesRead > 0) {
      this.onRead?.(bytesRead);
      this.hooks.observe?.(from, buf.subarray(offset, offset + bytesRead));
    }
    return bytesRead;
  }
}

/** Pulls chunks from a Readable with `read()`, holding at most the stream's own buffer ahead. */
export class StreamReader implements ChunkReader {
  private readonly stream: Readable;
  private chunk: Buffer | null = null;
  private chunkPos = 0;
  private ended = false;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;
  private readonly rawCounter: () => number;

  constructor(stream: Readable, rawCounter?: () => number) {
    this.stream = stream;
    this.rawCounter = rawCounter ?? (() => 0);
    const notify = (): void => {
      const wake = this.wake;
      this.wake = null;
      wake?.();
    };
    stream.on('readable', notify);
    stream.on('end', () => {
      this.ended = true;
      notify();
    });
    stream.on('error', (error: Error) => {
      this.failure = error;
      notify();
    });
    stream.on('close', () => {
      // Destroyed without 'end' (e.g. by close()): nothing more will come.
      this.ended = true;
      notify();
    });
  }

  get rawBytes(): number {
    return this.rawCounter();
  }

  async read(buf: Buffer, offset: number, length: number, signal?: AbortSignal): Promise<number> {
    for (;;) {
      const chunk = this.chunk;
      if (chunk !== null && this.chunkPos < chunk.length) {
        const n = chunk.copy(buf, offset, this.chunkPos, Math.min(chunk.length, this.chunkPos + length));
        this.chunkPos += n;
        return n;
      }
      const next = this.stream.read() as Buffer | string | null;
      if (next !== null) {
        this.chunk = typeof next === 'string' ? Buffer.from(next) : next;
        this.chunkPos = 0;
        continue;
      }
      if (this.failure) throw this.failure;
      if (this.ended || this.stream.readableEnded || signal?.aborted) return 0;
      await new Promise<void>((resolve) => {
        const onAbort = (): void => resolve();
        this.wake = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
  }

  destroy(): void {
    this.stream.destroy();
  }
}

/** Decompresses a gzip file (all members) from the start; `rawBytes` counts compressed bytes read. */
export function gunzipReader(handle: FileHandle, onRead?: (bytes: number) => void): StreamReader {
  const raw = handle.createReadStream({ start: 0, autoClose: false, highWaterMark: 64 * 1024 });
  if (onRead) raw.on('data', (chunk: Buffer | string) => onRead(chunk.length));
  const gunzip = createGunzip();
  // pipeline forwards an error of either stream to the gunzip side, where the reader sees it.
  pipeline(raw, gunzip, () => {});
  return new StreamReader(gunzip, () => raw.bytesRead);
}

/** What decompressing a whole gzip file showed. */
export type GzipCheck =
  | { readonly ok: true /** Decompressed bytes. */; readonly length: number }
  | {
      readonly ok: false;
      /** `cut`: ends in the middle of a member; `corrupt`: bad data, CRC or length; `unreadable`: an I/O error. */
      readonly problem: 'cut' | 'corrupt' | 'unreadable';
      readonly detail: string;
    };

/**
 * Decompresses a gzip file (all members) from the start without keeping the output: gzip checks a member's
 * CRC-32 and length only at its end, so this is how a file is known to be whole before any line of it is
 * trusted. zlib runs on libuv's thread pool; the read buffer is the only memory held. Rejects when `signal`
 * aborts.
 */
export async function checkGzip(handle: FileHandle, signal: AbortSignal): Promise<GzipCheck> {
  let length = 0;
  const count = new Writable({
    write(chunk: Buffer, _encoding, done) {
      length += chunk.length;
      done();
    },
  });
  try {
    const raw = handle.createReadStream({ start: 0, autoClose: false, highWaterMark: 256 * 1024 });
    await pipelinePromise(raw, createGunzip(), count, { signal });
    return { ok: true, length };
  } catch (error) {
    if (signal.aborted) throw error;
    const { code, message } = error as NodeJS.ErrnoException;
    if (code === 'Z_BUF_ERROR') return { ok: false, problem: 'cut', detail: message };
    return { ok: false, problem: code?.startsWith('Z_') ? 'corrupt' : 'unreadable', detail: message };
  }
}
