/**
 * The http source's write-ahead log (`buffer`): one writer appends entries, groups the fsyncs of every append
 * that arrives while one is in progress, and deletes whole segments once a committed checkpoint covers them.
 *
 * The format is ours rather than a library's: the write-ahead logs on npm are either a database's storage
 * (LevelDB, RocksDB and their bindings: a key-value store where we need a queue), fsync every write on its own,
 * or are unmaintained; a single-writer append log with grouped fsyncs and checkpoint-driven deletion is small.
 * The checksum is node:zlib's CRC-32.
 *
 * Layout: a directory of segment files `<base>.wal`, `base` (20 digits) being the log position of the segment's
 * first byte. A position counts bytes over the log's whole life, so it names one byte of one segment and stays
 * valid while older segments are deleted. An entry is
 *
 *     u32 BE payload length | u32 BE CRC-32 of the payload | payload
 *
 * A crash can leave a torn entry at the end of the last segment (a short header or payload), or blocks the file
 * system extended and never wrote (zeros): opening finds the first entry that does not check out and truncates its
 * segment there. A length of 0 never checks out, since the CRC-32 of nothing is 0 and a zeroed tail would.
 */
import { mkdir, open, readdir, rm, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { EtlError } from '../../../engine/errors.ts';
import { LockFile } from '../../../engine/lock.ts';

/** Length and checksum before each payload. */
export const HEADER_BYTES = 8;
const SEGMENT_SUFFIX = '.wal';
const SEGMENT_NAME = /^(\d{20})\.wal$/;

export interface SegmentLogOptions {
  readonly dir: string;
  /** Bytes the segments may hold on disk; an append past it is refused. */
  readonly maxBytes: number;
  /** A new segment starts once the current one holds this many bytes. */
  readonly segmentBytes: number;
  /** Whether an append resolves only once fsynced (else once written). */
  readonly fsync: boolean;
  /** Where the reader resumes (a checkpointed position): segments wholly before it are deleted. */
  readonly from: number | undefined;
  /** Names this holder in the lock file, for another process's refusal. */
  readonly holder: string;
  /** Told of each segment cut short on opening: the bytes from `at` on did not check out. */
  readonly onTruncated?: (file: string, at: number, dropped: number) => void;
  /** Told of each group written (and fsynced): how many appends it held. */
  readonly onGroup?: (appends: number) => void;
}

/** One entry read back. */
export interface LogEntry {
  /** Its position. */
  readonly offset: number;
  /** The position after it. */
  readonly next: number;
  readonly payload: Buffer;
}

/** Whether an entry of some size can be appended now. */
export type Room = 'fits' | 'full' | 'too_large';

interface Segment {
  readonly base: number;
  readonly path: string;
  /** Bytes written and, with fsync, synced: what readers may read. */
  size: number;
}

interface PendingAppend {
  readonly frame: Buffer[];
  readonly bytes: number;
  readonly resolve: (entry: { offset: number; next: number }) => void;
  readonly reject: (error: Error) => void;
}

export class SegmentLog {
  private readonly options: SegmentLogOptions;
  private readonly lock: LockFile;
  private readonly segments: Segment[] = [];
  private writer: FileHandle | undefined;
  private reader: { readonly segment: Segment; readonly handle: FileHandle } | undefined;
  private pending: PendingAppend[] = [];
  private pendingBytes = 0;
  private diskBytes = 0;
  private flushing: Promise<void> | undefined;
  private broken: Error | undefined;
  private closed = false;
  private appendWaiters: Array<() => void> = [];

  private constructor(options: SegmentLogOptions) {
    this.options = options;
    this.lock = new LockFile(
      join(options.dir, 'lock'),
      options.holder,
      'give each http source its own buffer.path, or stop the other run',
    );
  }

  /**
   * Takes the directory's lock, deletes the segments before `from`, truncates what does not check out, and makes
   * sure appends go at or after `from` (a log emptied by hand, or behind the checkpoint, starts a segment there).
   */
  static async open(options: SegmentLogOptions): Promise<SegmentLog> {
    const log = new SegmentLog(options);
    await mkdir(options.dir, { recursive: true });
    await log.lock.acquire();
    try {
      await log.load();
    } catch (error) {
      await log.close();
      throw error;
    }
    return log;
  }

  /** The position of the first entry on disk (where a reader without a checkpoint starts). */
  get start(): number {
    return this.segments[0]?.base ?? 0;
  }

  /** The position after the last entry readers may read. */
  get end(): number {
    const last = this.segments.at(-1);
    return last ? last.base + last.size : 0;
  }

  /** Bytes on disk and being appended. */
  get bytes(): number {
    return this.diskBytes + this.pendingBytes;
  }

  /** Whether an entry of `payloadBytes` can be appended now, would go past `maxBytes`, or never fits. */
  room(payloadBytes: number): Room {
    const bytes = HEADER_BYTES + payloadBytes;
    if (bytes > this.options.maxBytes) return 'too_large';
    return this.bytes + bytes > this.options.maxBytes ? 'full' : 'fits';
  }

  /**
   * Appends an entry; resolves with its position once it is written (and fsynced), together with the appends
   * made meanwhile: one write and one fsync for all of them. The caller checked `room` first.
   */
  append(payload: Buffer): Promise<{ offset: number; next: number }> {
    if (this.broken) return Promise.reject(this.broken);
    if (this.closed) return Promise.reject(new Error('the write-ahead buffer is closed'));
    const header = Buffer.allocUnsafe(HEADER_BYTES);
    header.writeUInt32BE(payload.length, 0);
    header.writeUInt32BE(crc32(payload), 4);
    const bytes = HEADER_BYTES + payload.length;
    this.pendingBytes += bytes;
    return new Promise((resolve, reject) => {
      this.pending.push({ frame: [header, payload], bytes, resolve, reject });
      this.kick();
    });
  }

  /** Appends of the same tick, and those arriving during a write and fsync, go in the next group together. */
  private kick(): void {
    if (this.flushing) return;
    // Started on the next turn of the event loop, so the requests of this one (one poll phase) share the write.
    this.flushing = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.flush())
      .finally(() => {
        this.flushing = undefined;
        // Appended after the loop saw none pending, before this callback ran.
        if (this.pending.length > 0) this.kick();
      });
  }

  /** Resolves once an append has been made readable (or at once if `end` has moved past `since`). */
  appended(since: number, signal: AbortSignal): Promise<void> {
    if (this.end > since || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        signal.removeEventListener('abort', done);
        resolve();
      };
      signal.addEventListener('abort', done, { once: true });
      this.appendWaiters.push(done);
    });
  }

  /**
   * The first entry at or after `offset`, or undefined when there is none yet. Its checksum is checked again:
   * what changed on disk since it was written fails the read rather than go downstream.
   */
  async read(offset: number): Promise<LogEntry | undefined> {
    for (const segment of this.segments) {
      if (offset >= segment.base + segment.size) continue;
      const at = Math.max(offset, segment.base) - segment.base;
      const handle = await this.readHandle(segment);
      const header = Buffer.allocUnsafe(HEADER_BYTES);
      await readFully(handle, header, at);
      const length = header.readUInt32BE(0);
      if (length === 0 || at + HEADER_BYTES + length > segment.size) throw corrupt(segment, at);
      const payload = Buffer.allocUnsafe(length);
      await readFully(handle, payload, at + HEADER_BYTES);
      if (crc32(payload) !== header.readUInt32BE(4)) throw corrupt(segment, at);
      const start = segment.base + at;
      return { offset: start, next: start + HEADER_BYTES + length, payload };
    }
    return undefined;
  }

  /** Deletes the segments wholly before `upTo` (a committed position); the segment being written stays. */
  async release(upTo: number): Promise<void> {
    while (this.segments.length > 1 && !this.closed) {
      const [first, second] = this.segments as [Segment, Segment];
      if (second.base > upTo) return;
      this.segments.shift();
      this.diskBytes -= first.size;
      if (this.reader?.segment === first) {
        const { handle } = this.reader;
        this.reader = undefined;
        await handle.close().catch(() => {});
      }
      await unlink(first.path).catch(() => {});
    }
  }

  /** Waits for the appends under way, closes the files and lets go of the lock. Idempotent. */
  async close(): Promise<void> {
    while (this.flushing) await this.flushing;
    this.closed = true;
    for (const wake of this.appendWaiters.splice(0)) wake();
    const writer = this.writer;
    const reader = this.reader;
    this.writer = undefined;
    this.reader = undefined;
    await writer?.close();
    await reader?.handle.close();
    await this.lock.release();
  }

  private async load(): Promise<void> {
    const { dir, from } = this.options;
    const names = (await readdir(dir)).filter((name) => SEGMENT_NAME.test(name)).sort();
    for (const name of names) {
      const base = Number(SEGMENT_NAME.exec(name)?.[1]);
      this.segments.push({ base, path: join(dir, name), size: 0 });
    }
    // Segments wholly before the checkpoint are done (a crash came between the commit and their deletion).
    while (from !== undefined && this.segments.length > 1 && (this.segments[1] as Segment).base <= from) {
      await rm((this.segments.shift() as Segment).path, { force: true });
    }
    for (const segment of this.segments) {
      const handle = await open(segment.path, 'r+');
      try {
        const { size } = await handle.stat();
        const valid = await validLength(handle, size);
        if (valid < size) {
          await handle.truncate(valid);
          await handle.sync();
          this.options.onTruncated?.(segment.path, valid, size - valid);
        }
        segment.size = valid;
        this.diskBytes += valid;
      } finally {
        await handle.close();
      }
    }
    const last = this.segments.at(-1);
    if (!last) await this.startSegment(from ?? 0);
    else if (from !== undefined && from > this.end) await this.startSegment(from);
    else this.writer = await open(last.path, 'a');
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const group = this.pending;
      this.pending = [];
      let bytes = 0;
      for (const append of group) bytes += append.bytes;
      try {
        await this.write(group);
        this.pendingBytes -= bytes;
      } catch (error) {
        this.pendingBytes -= bytes;
        for (const append of group) append.reject(error as Error);
        continue;
      }
      const segment = this.segments.at(-1) as Segment;
      let offset = segment.base + segment.size;
      segment.size += bytes;
      this.diskBytes += bytes;
      for (const append of group) {
        const next = offset + append.bytes;
        append.resolve({ offset, next });
        offset = next;
      }
      this.options.onGroup?.(group.length);
      for (const wake of this.appendWaiters.splice(0)) wake();
    }
  }

  /** Writes a group at the end of the current segment (a new one first when it is full), then fsyncs. */
  private async write(group: readonly PendingAppend[]): Promise<void> {
    if (this.broken) throw this.broken;
    const current = this.segments.at(-1) as Segment;
    if (current.size >= this.options.segmentBytes) await this.startSegment(current.base + current.size);
    const writer = this.writer as FileHandle;
    const buffers = group.flatMap((append) => append.frame);
    try {
      await writeFully(writer, buffers);
      if (this.options.fsync) await writer.datasync();
    } catch (error) {
      // Cut off what may have been written, so the next group does not follow garbage; if even that fails,
      // every later append is refused rather than written where no reader could reach it.
      const segment = this.segments.at(-1) as Segment;
      try {
        await writer.truncate(segment.size);
      } catch {
        this.broken = new EtlError(
          'ETL_RUN_SOURCE_FAILED',
          `the write-ahead buffer ${segment.path} could not be restored after a failed write: ${(error as Error).message}`,
        );
      }
      throw error;
    }
  }

  /** Starts a segment at `base` and makes it the one written; its directory entry is fsynced with it. */
  private async startSegment(base: number): Promise<void> {
    const path = join(this.options.dir, `${String(base).padStart(20, '0')}${SEGMENT_SUFFIX}`);
    const writer = await open(path, 'a');
    const previous = this.writer;
    this.writer = writer;
    this.segments.push({ base, path, size: 0 });
    await previous?.close();
    if (this.options.fsync) await syncDirectory(this.options.dir);
  }

  private async readHandle(segment: Segment): Promise<FileHandle> {
    if (this.reader?.segment === segment) return this.reader.handle;
    const previous = this.reader;
    const handle = await open(segment.path, 'r');
    this.reader = { segment, handle };
    await previous?.handle.close().catch(() => {});
    return handle;
  }
}

/** The length of the prefix of a segment made of entries that check out. */
async function validLength(handle: FileHandle, size: number): Promise<number> {
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  let at = 0;
  while (at + HEADER_BYTES <= size) {
    await readFully(handle, header, at);
    const length = header.readUInt32BE(0);
    if (length === 0 || at + HEADER_BYTES + length > size) break;
    const payload = Buffer.allocUnsafe(length);
    await readFully(handle, payload, at + HEADER_BYTES);
    if (crc32(payload) !== header.readUInt32BE(4)) break;
    at += HEADER_BYTES + length;
  }
  return at;
}

async function readFully(handle: FileHandle, into: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await handle.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) throw new Error(`unexpected end of file at byte ${position + done}`);
    done += bytesRead;
  }
}

async function writeFully(handle: FileHandle, buffers: Buffer[]): Promise<void> {
  let rest = buffers;
  while (rest.length > 0) {
    let { bytesWritten } = await handle.writev(rest);
    const left: Buffer[] = [];
    for (const buffer of rest) {
      if (bytesWritten >= buffer.length) bytesWritten -= buffer.length;
      else {
        left.push(buffer.subarray(bytesWritten));
        bytesWritten = 0;
      }
    }
    rest = left;
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function corrupt(segment: Segment, at: number): EtlError {
  return new EtlError(
    'ETL_RUN_SOURCE_FAILED',
    `the write-ahead buffer ${segment.path} is corrupt at byte ${at}: it changed on disk after it was written`,
  );
}
