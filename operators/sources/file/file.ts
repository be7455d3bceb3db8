/**
 * The file source: discovery, identity, reading and following. One loop reads the files in path order
 * into one shared buffer and one batch; a batch's position lists every known file with the offset of
 * its first line not yet emitted, so a rerun resumes exactly after the last acknowledged line.
 */
import { type FileHandle, open } from 'node:fs/promises';
import { errorMessage } from '../../../engine/errors.ts';
import type { Source, SourceContext, SourceOutput } from '../../../engine/operator.ts';
import { FdReader, gunzipReader } from './chunks.ts';
import { type Candidate, type DiscoveryProblem, FileMatcher } from './discover.ts';
import { type Fingerprint, fingerprint, hashBytes, isGzip, sameContent } from './fingerprint.ts';
import { allocateReadBuffer, Batch, newCursor, READ_BUFFER_BYTES, takeLines } from './lines.ts';
import { type FileEntry, type FilePosition, parsePosition } from './position.ts';
import { IDLE_FLUSH_MS, pump } from './pump.ts';
import type { FileSourceOptions } from './schema.ts';
import { closeTracked, entryOf, keyOf, readPosition, type Tracked } from './tracked.ts';
import { Waker } from './watch.ts';

/** Bytes one followed file may read per pass before the others get their turn. */
const FOLLOW_BUDGET_BYTES = 4 * READ_BUFFER_BYTES;
/** Bytes searched backwards for the last newline when starting at the end of a file. */
const TAIL_PROBE_BYTES = 64 * 1024;

export interface FileSourceHooks {
  /** Called for every read from disk (raw bytes), e.g. for tests of read-ahead. */
  onRead?(path: string, bytes: number): void;
  /** Called when a file starts being tracked, with the offset reading starts from (tests of start_at). */
  onTracked?(path: string, offset: number): void;
}

export function createFileSource(options: FileSourceOptions, ctx: SourceContext, hooks: FileSourceHooks = {}): Source {
  return new FileSource(options, ctx, hooks);
}

class FileSource implements Source {
  private readonly options: FileSourceOptions;
  private readonly ctx: SourceContext;
  private readonly hooks: FileSourceHooks;
  private readonly matcher: FileMatcher;
  private readonly waker = new Waker();
  private readonly truncatedLines;
  /** Files reachable under a matching path (or last seen so), by device and inode. */
  private readonly byKey = new Map<string, Tracked>();
  /** Every file being read or remembered, in reading order. */
  private order: Tracked[] = [];
  /** Checkpoint entries not yet matched to a file; only the first scan claims them. */
  private unclaimed: FileEntry[] = [];
  private readonly firstStart: boolean;
  private readonly batch: Batch;
  private buf: Buffer | null = null;
  private out: SourceOutput | null = null;
  private seq = 0;
  private emittedBytes = 0;
  private totalBytes = 0;
  /** Last error code logged per path, so a persistent problem is logged once. */
  private readonly reported = new Map<string, string>();
  private closed = false;

  constructor(options: FileSourceOptions, ctx: SourceContext, hooks: FileSourceHooks) {
    this.options = options;
    this.ctx = ctx;
    this.hooks = hooks;
    this.matcher = new FileMatcher(options.paths, options.exclude, ctx.baseDir);
    this.batch = new Batch(ctx.batchMaxRecords);
    this.truncatedLines = ctx.metrics.counter(
      'etl_source_truncated_lines_total',
      'Lines longer than max_line_bytes, cut and marked truncated',
    );
    const restored = parsePosition(ctx.restoredPosition);
    if (restored.problem) {
      ctx.logger.warn('ignoring an unreadable checkpoint position; files are read from the start', {
        problem: restored.problem,
      });
    }
    this.unclaimed = [...(restored.position?.files ?? [])];
    this.firstStart = restored.position === undefined;
  }

  async run(out: SourceOutput): Promise<void> {
    this.out = out;
    this.buf = allocateReadBuffer(this.options.max_line_bytes);
    await this.scan(true);
    if (out.stopping.aborted) return;
    if (this.options.follow) await this.follow(out);
    else await this.readAll(out);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.waker.close();
    await Promise.all(this.order.map((t) => closeTracked(t)));
  }

  // ------------------------------------------------------------------------------------ reading

  /** Without follow: every file once to its end, in path order, then the final position. */
  private async readAll(out: SourceOutput): Promise<void> {
    this.totalBytes = 0;
    for (const t of this.order) if (t.status === 'reading') this.totalBytes += await this.remainingBytes(t);
    out.progress(0, this.totalBytes);
    for (const t of this.order) {
      if (out.stopping.aborted) return;
      if (t.status !== 'reading') continue;
      if (!(await this.reopen(t))) continue;
      await this.readFile(t, true, Number.POSITIVE_INFINITY);
      if (t.status === 'reading') t.status = 'done';
      await closeTracked(t);
    }
    if (out.stopping.aborted) return;
    await this.flush();
    // Also records files that added no line (empty, or already read), so a rerun skips them.
    if (!out.stopping.aborted) await out.emit([], this.position(), 0);
  }

  /** With follow: read what is there, wait for change, rescan every poll interval, until stopped. */
  private async follow(out: SourceOutput): Promise<void> {
    const poll = this.options.poll_interval_ms;
    let lastScan = Date.now();
    while (!out.stopping.aborted) {
      let progressed = false;
      for (const t of [...this.order]) {
        if (out.stopping.aborted) return;
        if (t.status === 'reading' || t.status === 'rotated') progressed = (await this.readFollowed(t)) || progressed;
      }
      if (out.stopping.aborted) return;
      const now = Date.now();
      if (!this.batch.empty && now - this.batch.since >= IDLE_FLUSH_MS) await this.flush();
      // A created or renamed file is looked at at once: holding its descriptor early is what lets a file
      // that is renamed away soon after (a fast rotation) still be read.
      if (this.waker.takeRescan() || now - lastScan >= poll) {
        await this.scan(false);
        lastScan = Date.now();
      }
      if (progressed) continue;
      const wait = this.batch.empty ? poll - (Date.now() - lastScan) : this.batch.since + IDLE_FLUSH_MS - Date.now();
      await this.waker.wait(Math.max(1, Math.min(wait, poll)), out.stopping);
    }
  }

  /** One turn of a followed file; true when it produced bytes. */
  private async readFollowed(t: Tracked): Promise<boolean> {
    if (t.compressed) {
      const before = t.cursor.offset;
      await this.readFile(t, true, Number.POSITIVE_INFINITY);
      if (t.status === 'reading' || t.status === 'rotated') {
        t.status = 'done';
        await closeTracked(t);
      }
      return t.cursor.offset !== before;
    }
    if (t.atEof && t.handle !== null) {
      // Idle at its end: one fstat tells whether anything is new. New bytes after a pause are where a
      // truncate-and-refill shows, so the identity is checked before they are read. Compared with the
      // read position, not with `t.size`: a rescan may have recorded the new size already.
      try {
        const size = (await t.handle.stat()).size;
        if (size === readPosition(t)) return this.whileQuiet(t);
        t.size = size;
        if (await this.replaced(t, size)) this.restartTruncated(t, size);
      } catch (error) {
        this.report(t.path, error, 'cannot read file; going on with the others');
        t.status = 'failed';
        await closeTracked(t);
        return false;
      }
    }
    const read = await this.readFile(t, false, FOLLOW_BUDGET_BYTES);
    if (read === undefined) return false;
    t.atEof = read.eof;
    if (read.eof) t.size = readPosition(t);
    if (read.bytesRead > 0) {
      t.lastGrowth = Date.now();
      if (t.fingerprint.bytes < this.options.fingerprint_bytes) await this.refreshFingerprint(t);
      return true;
    }
    return read.eof ? this.whileQuiet(t) : false;
  }

  /** A followed file with nothing new: let go of a rotated one, or emit a partial line that waited long enough. */
  private async whileQuiet(t: Tracked): Promise<boolean> {
    const now = Date.now();
    const quiet = now - t.lastGrowth;
    const wait = this.options.rotate_wait_ms;
    if (t.status === 'rotated' && quiet >= wait && now - t.rotatedAt >= wait) {
      await this.finishPartialLine(t);
      await this.forget(t);
      this.ctx.logger.info('rotated file finished; closed it', { path: t.path });
      return true;
    }
    if (t.carry !== null && quiet >= this.options.partial_line_timeout_ms) {
      await this.finishPartialLine(t);
      return true;
    }
    return false;
  }

  /** Pumps one file; a read error is logged with the path and marks the file failed (others go on). */
  private async readFile(
    t: Tracked,
    final: boolean,
    budget: number,
  ): Promise<{ bytesRead: number; eof: boolean } | undefined> {
    const out = this.out as SourceOutput;
    try {
      if (t.reader === null && !(await this.openReader(t))) return undefined;
      return await pump(t, t.reader as NonNullable<Tracked['reader']>, this.buf as Buffer, this.batch, {
        maxLineBytes: this.options.max_line_bytes,
        final,
        budget,
        stopping: out.stopping,
        flush: () => this.flush(),
      });
    } catch (error) {
      this.report(t.path, error, 'cannot read file; going on with the others');
      t.status = 'failed';
      t.carry = null;
      await closeTracked(t);
      return undefined;
    }
  }

  /** Creates the reader at the file's offset; for gzip decompresses and skips up to it. */
  private async openReader(t: Tracked): Promise<boolean> {
    if (t.handle === null) return false;
    const onRead = this.hooks.onRead;
    const path = t.path;
    if (!t.compressed) {
      t.reader = new FdReader(t.handle, readPosition(t), onRead && ((n) => onRead(path, n)));
      return true;
    }
    const gzip = gunzipReader(t.handle, onRead && ((n) => onRead(path, n)));
    t.gzip = gzip;
    t.reader = gzip;
    t.carry = null;
    const buf = this.buf as Buffer;
    for (let skip = t.cursor.offset; skip > 0; ) {
      const n = await gzip.read(buf, 0, Math.min(buf.length, skip));
      if (n === 0) {
        this.ctx.logger.warn('compressed file is shorter than its checkpoint offset; treating it as read', {
          path,
          offset: t.cursor.offset,
        });
        t.status = 'done';
        t.complete = true;
        await closeTracked(t);
        return false;
      }
      skip -= n;
    }
    return true;
  }

  /** Emits a followed file's last line that never got its newline. */
  private async finishPartialLine(t: Tracked): Promise<void> {
    const carry = t.carry;
    if (carry === null) return;
    if (this.batch.full) await this.flush();
    if (this.out?.stopping.aborted) return;
    t.carry = null;
    const buf = this.buf as Buffer;
    const end = carry.copy(buf, 0);
    takeLines(t.cursor, buf, 0, end, this.batch, this.options.max_line_bytes, true);
  }

  private restartTruncated(t: Tracked, size: number): void {
    this.ctx.logger.info('file was truncated (copytruncate?); reading it again from the start', {
      path: t.path,
      offset: t.cursor.offset,
      size,
    });
    t.cursor.offset = 0;
    t.cursor.line = 0;
    t.cursor.skipping = false;
    t.carry = null;
    t.size = size;
    t.atEof = false;
    // Identity by device and inode until the new content is long enough to fingerprint.
    t.fingerprint = hashBytes(Buffer.alloc(0));
    if (t.reader instanceof FdReader) t.reader.position = 0;
  }

  private async flush(): Promise<void> {
    const out = this.out;
    if (out === null || this.batch.empty || out.stopping.aborted) return;
    const { records, bytes, truncated } = this.batch.take();
    if (truncated > 0) this.truncatedLines.inc(truncated);
    this.emittedBytes += bytes;
    await out.emit(records, this.position(), bytes);
    if (!this.options.follow) out.progress(this.emittedBytes, this.totalBytes);
  }

  private position(): FilePosition {
    return { files: this.order.map(entryOf) };
  }

  // ---------------------------------------------------------------------------------- discovery

  /**
   * Matches the globs and reconciles them with what is known: renames within the globs keep their
   * state, a path now leading to another file rotates the old one, new files are admitted.
   */
  private async scan(initial: boolean): Promise<void> {
    const problems: DiscoveryProblem[] = [];
    let candidates: Candidate[];
    try {
      candidates = await this.matcher.list(problems);
    } catch (error) {
      this.report('(glob)', error, 'cannot list files');
      return;
    }
    for (const problem of problems) this.report(problem.path, problem.error, 'cannot stat file');
    if (initial && candidates.length === 0) {
      const patterns = this.options.paths.map((p) => `\`${p}\``).join(', ');
      this.ctx.logger.warn(
        `no file matches ${patterns}${this.options.follow ? ' yet; files are picked up as they appear' : ''}`,
        { cwd: this.ctx.baseDir },
      );
    }
    if (initial && this.unclaimed.length > 0) {
      // Files whose device and inode a checkpoint entry names claim it before fingerprint-only matches.
      const named = new Set(this.unclaimed.map((e) => keyOf(e.dev, e.ino)));
      candidates = [
        ...candidates.filter((c) => named.has(keyOf(c.dev, c.ino))),
        ...candidates.filter((c) => !named.has(keyOf(c.dev, c.ino))),
      ];
    }
    const seen = new Set<string>();
    for (const c of candidates) {
      if (this.out?.stopping.aborted) return;
      const key = keyOf(c.dev, c.ino);
      if (seen.has(key)) continue;
      seen.add(key);
      const known =
        this.byKey.get(key) ?? this.order.find((o) => o.status === 'rotated' && keyOf(o.dev, o.ino) === key);
      if (known && (await this.stillSameFile(known, c))) {
        this.byKey.set(key, known);
        await this.revisit(known, c);
        continue;
      }
      if (known) this.retire(known);
      await this.admit(c, initial);
    }
    for (const t of [...this.byKey.values()]) {
      if (seen.has(keyOf(t.dev, t.ino))) continue;
      if (t.status === 'reading' && this.options.follow) this.retire(t);
      else if (t.status !== 'reading') await this.forget(t);
    }
    this.unclaimed = [];
    this.sortOrder();
    if (this.options.follow) {
      const dirs = new Set(this.matcher.baseDirs);
      for (const t of this.byKey.values()) dirs.add(parentDir(t.path));
      this.waker.watch(dirs);
    }
  }

  /** A known device and inode at a matching path: the same file unless the inode was reused. */
  private async stillSameFile(t: Tracked, c: Candidate): Promise<boolean> {
    try {
      if (t.handle) {
        const st = await t.handle.stat();
        if (st.nlink === 0) return false;
        if (!t.compressed && t.status === 'reading' && this.options.follow && (await this.replaced(t, st.size))) {
          this.restartTruncated(t, st.size);
        }
        return true;
      }
      if (c.size === t.size) return true;
      const handle = await open(c.path, 'r');
      try {
        const current = await fingerprint(handle, t.compressed, this.options.fingerprint_bytes);
        return await sameContent(handle, t.compressed, current, t.fingerprint);
      } finally {
        await handle.close();
      }
    } catch {
      return false;
    }
  }

  /** copytruncate and friends: the file shrank below the read point, or its first bytes changed. */
  private async replaced(t: Tracked, size: number): Promise<boolean> {
    if (size < readPosition(t)) return true;
    if (t.fingerprint.bytes === 0 || t.handle === null || size < t.fingerprint.bytes) return false;
    const current = await fingerprint(t.handle, false, t.fingerprint.bytes);
    return current.hash !== t.fingerprint.hash;
  }

  private async revisit(t: Tracked, c: Candidate): Promise<void> {
    t.path = c.path;
    t.cursor.file = c.path;
    if (t.status === 'rotated') t.status = 'reading';
    if (t.status === 'failed' && c.size !== t.size && this.options.follow && (await this.reopen(t))) {
      // Changed since it failed: try again from its offset.
      t.status = 'reading';
      t.atEof = false;
      this.reported.delete(t.path);
    }
    t.size = c.size;
  }

  /** No matching path leads to this file any more: drain it through its descriptor, then forget it. */
  private retire(t: Tracked): void {
    this.byKey.delete(keyOf(t.dev, t.ino));
    if (t.status === 'reading' && t.handle !== null && this.options.follow) {
      t.status = 'rotated';
      t.rotatedAt = Date.now();
      this.ctx.logger.info('file rotated away; finishing it through its open descriptor', { path: t.path });
    } else {
      void this.forget(t);
    }
  }

  private async forget(t: Tracked): Promise<void> {
    const key = keyOf(t.dev, t.ino);
    if (this.byKey.get(key) === t) this.byKey.delete(key);
    this.order = this.order.filter((o) => o !== t);
    await closeTracked(t);
  }

  /** A file not known under its device and inode: find where to start in it. */
  private async admit(c: Candidate, initial: boolean): Promise<void> {
    let handle: FileHandle;
    try {
      handle = await open(c.path, 'r');
    } catch (error) {
      this.report(c.path, error, 'cannot open file; going on with the others');
      return;
    }
    try {
      const st = await handle.stat();
      const compressed = await isGzip(handle);
      const fp = await fingerprint(handle, compressed, this.options.fingerprint_bytes);
      const t: Tracked = {
        cursor: newCursor(this.ctx.id, c.path),
        carry: null,
        seq: this.seq++,
        dev: st.dev,
        ino: st.ino,
        compressed,
        path: c.path,
        fingerprint: fp,
        status: 'reading',
        duplicate: false,
        complete: false,
        handle,
        reader: null,
        gzip: null,
        size: st.size,
        lastGrowth: Date.now(),
        rotatedAt: 0,
        atEof: false,
      };
      await this.placeCursor(t, initial);
      this.reported.delete(c.path);
      this.byKey.set(keyOf(t.dev, t.ino), t);
      this.order.push(t);
      this.hooks.onTracked?.(t.path, t.cursor.offset);
      // Without follow, descriptors are opened one at a time while reading, not held for every file.
      if (!this.options.follow || t.status === 'done') await closeTracked(t);
    } catch (error) {
      await handle.close().catch(() => {});
      this.report(c.path, error, 'cannot read file; going on with the others');
    }
  }

  /** Sets where reading starts: a checkpoint entry, a duplicate of a known file, start_at, or 0. */
  private async placeCursor(t: Tracked, initial: boolean): Promise<void> {
    const handle = t.handle as FileHandle;
    const entry = await this.claim(t, handle);
    if (entry) {
      if (entry.duplicate) return this.markDuplicate(t, entry.path);
      if (t.compressed && entry.complete) {
        t.complete = true;
        t.status = 'done';
      } else if (!t.compressed && t.size < entry.offset) {
        this.ctx.logger.info('file is shorter than its checkpoint offset; reading it from the start', {
          path: t.path,
        });
      } else {
        t.cursor.offset = entry.offset;
        t.cursor.line = entry.line;
        t.cursor.skipping = entry.skipping === true;
      }
      return;
    }
    const original = this.copyOf(t);
    if (original) return this.markDuplicate(t, original.path);
    if (initial && this.firstStart && this.options.start_at === 'end') {
      if (t.compressed) {
        t.complete = true;
        t.status = 'done';
      } else {
        t.cursor.offset = await endOfLastLine(handle, t.size);
      }
    }
  }

  /** The checkpoint entry of this file: same device and inode with matching content, or a full fingerprint. */
  private async claim(t: Tracked, handle: FileHandle): Promise<FileEntry | undefined> {
    let found = -1;
    for (let i = 0; i < this.unclaimed.length && found < 0; i++) {
      const e = this.unclaimed[i] as FileEntry;
      if (e.dev === t.dev && e.ino === t.ino && (await this.matches(t, handle, e))) found = i;
    }
    for (let i = 0; i < this.unclaimed.length && found < 0; i++) {
      const e = this.unclaimed[i] as FileEntry;
      if (e.fingerprint_bytes === this.options.fingerprint_bytes && (await this.matches(t, handle, e))) found = i;
    }
    if (found < 0) return undefined;
    const [entry] = this.unclaimed.splice(found, 1);
    return entry;
  }

  private matches(t: Tracked, handle: FileHandle, e: FileEntry): Promise<boolean> {
    const expected: Fingerprint = { hash: e.fingerprint, bytes: e.fingerprint_bytes };
    return sameContent(handle, t.compressed, t.fingerprint, expected);
  }

  /** A known file with the same full fingerprint under another inode: this one is a copy of it. */
  private copyOf(t: Tracked): Tracked | undefined {
    if (t.fingerprint.bytes < this.options.fingerprint_bytes) return undefined;
    for (const o of this.order) {
      if (!o.duplicate && o.fingerprint.hash === t.fingerprint.hash && o.fingerprint.bytes === t.fingerprint.bytes) {
        return o;
      }
    }
    return undefined;
  }

  private markDuplicate(t: Tracked, of: string): void {
    this.ctx.logger.info('file has the same first bytes as one already read; skipping it as a copy', {
      path: t.path,
      copy_of: of,
    });
    t.duplicate = true;
    t.status = 'done';
  }

  /** Reopens a file for reading without follow; false (logged) when it is gone or was replaced. */
  private async reopen(t: Tracked): Promise<boolean> {
    try {
      const handle = await open(t.path, 'r');
      const st = await handle.stat();
      if (st.dev !== t.dev || st.ino !== t.ino) {
        await handle.close();
        this.ctx.logger.warn('file was replaced between discovery and reading; skipped', { path: t.path });
        t.status = 'failed';
        return false;
      }
      t.handle = handle;
      return true;
    } catch (error) {
      this.report(t.path, error, 'cannot open file; going on with the others');
      t.status = 'failed';
      return false;
    }
  }

  private async refreshFingerprint(t: Tracked): Promise<void> {
    if (t.handle === null) return;
    t.fingerprint = await fingerprint(t.handle, t.compressed, this.options.fingerprint_bytes);
  }

  /** Content bytes still to read, for progress; gzip from the size in its trailer. */
  private async remainingBytes(t: Tracked): Promise<number> {
    if (!t.compressed) return Math.max(0, t.size - t.cursor.offset);
    try {
      const handle = await open(t.path, 'r');
      try {
        const tail = Buffer.alloc(4);
        await handle.read(tail, 0, 4, Math.max(0, t.size - 4));
        // ISIZE is the last member's size modulo 2^32: a good estimate for one member under 4 GiB.
        return Math.max(t.size, tail.readUInt32LE(0)) - t.cursor.offset;
      } finally {
        await handle.close();
      }
    } catch {
      return t.size;
    }
  }

  private sortOrder(): void {
    this.order.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : a.seq - b.seq));
  }

  private report(path: string, error: unknown, message: string): void {
    const code = (error as NodeJS.ErrnoException | null)?.code ?? errorMessage(error);
    if (this.reported.get(path) === code) return;
    this.reported.set(path, code);
    this.ctx.logger.error(message, { path, code, error: errorMessage(error) });
  }
}

function parentDir(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** Offset just after the last newline in the file's tail, so a line being written is not cut. */
async function endOfLastLine(handle: FileHandle, size: number): Promise<number> {
  if (size === 0) return 0;
  const length = Math.min(size, TAIL_PROBE_BYTES);
  const tail = Buffer.alloc(length);
  const { bytesRead } = await handle.read(tail, 0, length, size - length);
  const nl = tail.subarray(0, bytesRead).lastIndexOf(0x0a);
  return nl === -1 ? size : size - length + nl + 1;
}
