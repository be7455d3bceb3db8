/**
 * The file source: discovery, identity, reading and following. One loop reads the files oldest modified first
 * (equal times in path order) into one shared buffer and one batch; a batch's position lists every known file
 * with the offset of its first line not yet emitted, so a rerun resumes exactly after the last acknowledged line.
 *
 * Following many files: directory notifications say which files changed, so an idle file costs nothing;
 * a slow sweep and a paced full rescan catch what notifications miss. Only recently active (and rotated)
 * files keep a descriptor, at most `max_open_files`; the others are reopened by path, identity checked.
 */
import { type FileHandle, open, stat } from 'node:fs/promises';
import { EtlError, errorMessage } from '../../../engine/errors.ts';
import type { Source, SourceContext, SourceOutput } from '../../../engine/operator.ts';
import { checkGzip, FdReader, type GzipCheck, gunzipReader } from '../../shared/line-reader/chunks.ts';
import { Claims } from './claims.ts';
import { type Candidate, type DiscoveryProblem, FileMatcher } from './discover.ts';
import { type Fingerprint, fingerprint, hashBytes, identify, sameContent } from './fingerprint.ts';
import { allocateReadBuffer, Batch, newCursor, READ_BUFFER_BYTES, takeLines } from '../../shared/line-reader/lines.ts';
import { type FileEntry, type FilePosition, parsePosition } from './position.ts';
import { IDLE_FLUSH_MS, pump } from '../../shared/line-reader/pump.ts';
import { sortForReading } from './rotation.ts';
import type { FileSourceOptions } from './schema.ts';
import { entryOf, inputOf, keyOf, readPosition, setGeneration, type Tracked } from './tracked.ts';
import { OpenFiles } from './open-files.ts';
import {
  brokenGzip,
  gzipStaysCut,
  notFilePosition,
  offsetBeyondFile,
  offsetBeyondGzip,
  shrankWhileRead,
} from './refusals.ts';
import { DirectoryWatcher } from './watch.ts';

/** Bytes one followed file may read per pass before the others get their turn. */
const FOLLOW_BUDGET_BYTES = 4 * READ_BUFFER_BYTES;
/** Bytes searched backwards for the last newline when starting at the end of a file. */
const TAIL_PROBE_BYTES = 64 * 1024;
/** Followed files checked per sweep, the safety net for missed notifications. */
const SWEEP_FILES = 256;
/**
 * The safety-net work (sweeps, full rescans) is paced to take about 1/PACE of the time: after work that
 * took d ms, the next runs after max(poll_interval_ms, PACE * d).
 */
const PACE = 100;

export interface FileSourceHooks {
  /** Called for every read from disk (raw bytes), e.g. for tests of read-ahead. */
  onRead?(path: string, bytes: number): void;
  /** Called when a file starts being tracked, with the offset reading starts from (tests of start_at). */
  onTracked?(path: string, offset: number): void;
  /** Called when the follow loop looks at a file (tests that idle files cost nothing). */
  onLook?(path: string): void;
}

export function createFileSource(options: FileSourceOptions, ctx: SourceContext, hooks: FileSourceHooks = {}): Source {
  return new FileSource(options, ctx, hooks);
}

class FileSource implements Source {
  private readonly options: FileSourceOptions;
  private readonly ctx: SourceContext;
  private readonly hooks: FileSourceHooks;
  private readonly matcher: FileMatcher;
  private readonly watcher = new DirectoryWatcher();
  private readonly truncatedLines;
  /** Files reachable under a matching path (or last seen so), by device and inode. */
  private readonly byKey = new Map<string, Tracked>();
  /** The same files by path, to map a notification to its file. */
  private readonly byPath = new Map<string, Tracked>();
  /** Files rotated away, still read through their descriptor, by device and inode. */
  private readonly rotatedByKey = new Map<string, Tracked>();
  /** Every file being read or remembered, in reading order. */
  private order: Tracked[] = [];
  private orderChanged = false;
  /** Checkpoint entries not yet matched to a file; only the first scan claims them. */
  private readonly claims: Claims;
  /** Files with a full fingerprint by its hash, built when a scan needs it (copies). */
  private copyIndex: Map<string, Tracked> | null = null;
  /**
   * Entries of content no longer followed, kept until a full scan that started after has ended: content truncated
   * away from a file (copytruncate, also in the position), so that its copy continues where the reading was (the
   * copy exists before the truncation); a file finished after it was rotated away, so that if it shows up again
   * under a matching name (its notification late, a rename back), or a copy of it does, it continues there.
   */
  private kept: Array<{ entry: FileEntry; afterScan: number }> = [];
  /** Full scans started so far. */
  private fullScans = 0;
  /** Paths that may lead to another file now (a notification, an identity check): the next scan looks. */
  private readonly pendingPaths = new Set<string>();
  /** Descriptors of followed files, at most max_open_files. */
  private readonly openFiles: OpenFiles;
  private sweepNext = 0;
  private readonly firstStart: boolean;
  private readonly batch: Batch;
  private buf: Buffer | null = null;
  private out: SourceOutput | null = null;
  private seq = 0;
  private emittedBytes = 0;
  private totalBytes = 0;
  /** Last error code reported per path, so a persistent problem is reported once. */
  private readonly reported = new Map<string, string>();
  private closed = false;

  constructor(options: FileSourceOptions, ctx: SourceContext, hooks: FileSourceHooks) {
    this.options = options;
    this.ctx = ctx;
    this.hooks = hooks;
    this.matcher = new FileMatcher(options.paths, options.exclude, ctx.baseDir);
    this.batch = new Batch(ctx.batchMaxRecords);
    this.openFiles = new OpenFiles(options.max_open_files);
    this.truncatedLines = ctx.metrics.counter(
      'etl_source_truncated_lines_total',
      'Lines longer than max_line_bytes, cut and marked truncated',
    );
    const restored = parsePosition(ctx.restoredPosition);
    if (restored.problem) {
      throw notFilePosition(ctx.pipeline, ctx.id, restored.problem);
    }
    this.claims = new Claims(restored.position?.files ?? []);
    this.firstStart = restored.position === undefined;
    ctx.signals?.sourceState(() => ({ lagBytes: this.lagBytes(), openFiles: this.openFiles.size }));
  }

  /**
   * Bytes between where reading is and the end of each plain file still read, as of the last look at its size
   * (at scrape: no system call). Compressed files are left out: their end is known in compressed bytes only.
   */
  private lagBytes(): number {
    let lag = 0;
    for (const t of this.order) {
      if (t.compressed || (t.status !== 'reading' && t.status !== 'rotated')) continue;
      lag += Math.max(0, t.size - readPosition(t));
    }
    return lag;
  }

  async run(out: SourceOutput): Promise<void> {
    this.out = out;
    this.buf = allocateReadBuffer(this.options.max_line_bytes);
    const started = performance.now();
    await this.scan(true);
    if (out.stopping.aborted) return;
    if (this.options.follow) await this.follow(out, performance.now() - started);
    else await this.readAll(out);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watcher.close();
    await Promise.all(this.order.map((t) => this.openFiles.release(t)));
  }

  // ------------------------------------------------------------------------------------ reading

  /** Without follow: every file once to its end, oldest modified first, then the final position. */
  private async readAll(out: SourceOutput): Promise<void> {
    this.totalBytes = 0;
    for (const t of this.order) if (t.status === 'reading') this.totalBytes += await this.remainingBytes(t);
    out.progress(0, this.totalBytes);
    const order = this.order;
    /** Indexes in `order` of the compressed files to read. */
    const compressed: number[] = [];
    for (let i = 0; i < order.length; i++) {
      const t = order[i] as Tracked;
      if (t.status === 'reading' && t.compressed) compressed.push(i);
    }
    let ahead = 0;
    for (let i = 0; i < order.length; i++) {
      const t = order[i] as Tracked;
      if (out.stopping.aborted) return;
      if (t.status !== 'reading') continue;
      if (t.handle === null && !(await this.reopen(t))) continue;
      // The next compressed file is checked (zlib works on the thread pool) while this one is read.
      while (ahead < compressed.length && (compressed[ahead] as number) <= i) ahead++;
      const next = order[compressed[ahead] ?? -1];
      const nextReady =
        next?.status === 'reading' && next.gzipCheck === null && (next.handle !== null || (await this.reopen(next)));
      if (nextReady && next?.handle) {
        const check = checkGzip(next.handle, out.stopping);
        check.catch(() => {});
        next.gzipCheck = check;
      }
      // A plain file's last line without newline waits until the file is known not to have shrunk.
      const read = await this.readFile(t, t.compressed, Number.POSITIVE_INFINITY);
      if (read !== undefined && !t.compressed && !out.stopping.aborted) await this.endOfFile(t);
      if (t.status === 'reading') t.status = 'done';
      await this.openFiles.release(t);
    }
    if (out.stopping.aborted) return;
    await this.flush();
    // Also records files that added no line (empty, or already read), so a rerun skips them.
    if (!out.stopping.aborted) await out.emit([], this.position(), 0);
  }

  /** A plain file read to its end without follow: emit its last partial line, unless the file shrank meanwhile. */
  private async endOfFile(t: Tracked): Promise<void> {
    const handle = t.handle as FileHandle;
    try {
      const st = await handle.stat();
      if (await this.replaced(t, st.size)) {
        await this.shrankWhileRead(t, st.size);
        return;
      }
      t.size = st.size;
      t.mtimeMs = st.mtimeMs;
    } catch (error) {
      this.report(t.path, error, 'cannot read file');
      t.status = 'failed';
      return;
    }
    await this.finishPartialLine(t);
  }

  /**
   * Without follow, a file truncated while it was read: its cut last line is not emitted, its content is kept
   * as truncated away (a copy found by the next run continues there) and the file is read from its start by
   * the next run. Bytes it had that were not read make it an input error.
   */
  private async shrankWhileRead(t: Tracked, size: number): Promise<void> {
    const offset = t.cursor.offset;
    const readTo = readPosition(t);
    const unread = Math.max(t.size, readTo) - offset;
    const fields = { path: t.path, had: Math.max(t.size, readTo), read: offset, now: size };
    await this.restartTruncated(t, size, false);
    t.status = 'done';
    if (t.handle)
      t.fingerprint = await fingerprint(t.handle, false, this.options.fingerprint_bytes).catch(() => t.fingerprint);
    if (unread <= 0) {
      this.ctx.logger.warn(
        'file shrank after it was read (truncated in place?); the next run reads it from its start',
        fields,
      );
      return;
    }
    this.inputError(t.path, offset, shrankWhileRead(t.path, fields.had, offset, size, readTo > offset));
  }

  /**
   * With follow: read what notifications (and the safety-net checks) say changed, until stopped. New and
   * renamed names are looked at as soon as they are notified: holding a file early is what lets one that
   * is renamed away soon after (a fast rotation) still be read.
   */
  private async follow(out: SourceOutput, firstScanMs: number): Promise<void> {
    const poll = this.options.poll_interval_ms;
    let nextSweep = 0;
    let nextFullScan = Date.now() + Math.max(poll, PACE * firstScanMs);
    while (!out.stopping.aborted) {
      const events = this.watcher.take();
      for (const path of events.changed) this.markDirty(path);
      for (const path of events.renamed) this.pendingPaths.add(path);
      let full = events.unnamed.size > 0;
      for (const dir of events.unnamed)
        for (const t of this.byKey.values()) if (parentDir(t.path) === dir) t.dirty = true;
      const now = Date.now();
      if (full || now >= nextFullScan) {
        const started = performance.now();
        await this.scan(false);
        nextFullScan = Date.now() + Math.max(poll, PACE * (performance.now() - started));
        full = true;
      }
      if (!full && this.pendingPaths.size > 0) await this.scan(false, true);
      if (out.stopping.aborted) return;
      if (Date.now() >= nextSweep) {
        const started = performance.now();
        await this.sweep();
        nextSweep = Date.now() + Math.max(poll, PACE * (performance.now() - started));
      }
      let progressed = false;
      let timed = false;
      for (const t of [...this.order]) {
        if (out.stopping.aborted) return;
        if (t.status === 'rotated' || (t.status === 'reading' && (t.dirty || !t.atEof || t.carry !== null))) {
          progressed = (await this.readFollowed(t)) || progressed;
          // Rotated files and partial lines wait for a deadline: they are looked at again every poll.
          timed ||= t.status === 'rotated' || (t.status === 'reading' && t.carry !== null);
        }
      }
      if (out.stopping.aborted) return;
      if (!this.batch.empty && Date.now() - this.batch.since >= IDLE_FLUSH_MS) await this.flush();
      await this.openFiles.trim();
      if (progressed || this.pendingPaths.size > 0) continue;
      const at = Date.now();
      let wake = Math.min(nextSweep, nextFullScan);
      if (!this.batch.empty) wake = Math.min(wake, this.batch.since + IDLE_FLUSH_MS);
      if (timed) wake = Math.min(wake, at + poll);
      await this.watcher.wait(Math.max(1, wake - at), out.stopping);
    }
  }

  private markDirty(path: string): void {
    const t = this.byPath.get(path);
    if (t === undefined) return;
    t.dirty = true;
    // A failed file is tried again by a scan, when its size changed.
    if (t.status === 'failed') this.pendingPaths.add(path);
  }

  /**
   * The safety net for notifications that did not come: files of directories not watched are all looked at,
   * and the next SWEEP_FILES of the others are checked, by path, for a change of size or of the file there.
   */
  private async sweep(): Promise<void> {
    const followed = this.order.filter((t) => t.status === 'reading' && !t.compressed);
    const checks: Tracked[] = [];
    for (const t of followed) {
      if (!this.watcher.watching(parentDir(t.path))) t.dirty = true;
    }
    const count = Math.min(SWEEP_FILES, followed.length);
    for (let i = 0; i < count; i++) {
      const t = followed[(this.sweepNext + i) % followed.length] as Tracked;
      if (!t.dirty) checks.push(t);
    }
    this.sweepNext = followed.length === 0 ? 0 : (this.sweepNext + count) % followed.length;
    await Promise.all(
      checks.map(async (t) => {
        try {
          const st = await stat(t.path);
          if (st.dev !== t.dev || st.ino !== t.ino) this.pendingPaths.add(t.path);
          else if (st.size !== t.size) t.dirty = true;
        } catch {
          this.pendingPaths.add(t.path);
        }
      }),
    );
  }

  /** One turn of a followed file; true when it produced bytes. */
  private async readFollowed(t: Tracked): Promise<boolean> {
    t.dirty = false;
    this.hooks.onLook?.(t.path);
    if (t.compressed) {
      const before = t.cursor.offset;
      if (!(await this.ensureOpen(t))) return false;
      await this.readFile(t, true, Number.POSITIVE_INFINITY);
      if (t.status === 'reading' || t.status === 'rotated') {
        t.status = 'done';
        await this.openFiles.release(t);
      }
      return t.cursor.offset !== before;
    }
    if (t.atEof) {
      // Idle at its end: one stat tells whether anything is new (fstat when open; by path when closed, which also
      // tells whether the path still leads to it). New bytes after a pause are where a truncate-and-refill shows,
      // so the identity is checked before they are read.
      try {
        const st = t.handle ? await t.handle.stat() : await stat(t.path);
        if (t.handle === null && (st.dev !== t.dev || st.ino !== t.ino)) {
          this.pendingPaths.add(t.path);
          return false;
        }
        // Compared with the read position: what the reader saw, whatever a scan recorded. Modified but not grown
        // may be a rewrite (truncated and refilled to the same size): the first bytes tell.
        const grown = st.size !== readPosition(t);
        if (!grown && st.mtimeMs === t.mtimeMs) return this.whileQuiet(t);
        if (!(await this.ensureOpen(t))) {
          // No descriptor free (all held by rotated files being finished): next turn.
          t.dirty = t.status === 'reading';
          return false;
        }
        t.size = st.size;
        t.mtimeMs = st.mtimeMs;
        if (await this.replaced(t, st.size)) await this.restartTruncated(t, st.size, true);
        else if (!grown) return this.whileQuiet(t);
      } catch (error) {
        if (t.handle === null && (error as NodeJS.ErrnoException).code === 'ENOENT') {
          this.pendingPaths.add(t.path);
          return false;
        }
        this.report(t.path, error, 'cannot read file');
        t.status = 'failed';
        await this.openFiles.release(t);
        return false;
      }
    } else if (!(await this.ensureOpen(t))) {
      return false;
    }
    const read = await this.readFile(t, false, FOLLOW_BUDGET_BYTES);
    if (read === undefined) return false;
    t.atEof = read.eof;
    if (read.eof) t.size = readPosition(t);
    if (read.bytesRead > 0) {
      t.lastGrowth = Date.now();
      this.openFiles.touch(t);
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
      this.kept.push({ entry: entryOf(t), afterScan: this.fullScans });
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

  /** Pumps one file; a read error is reported with the path and marks the file failed (others go on). */
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
      if (error instanceof EtlError) throw error;
      this.report(t.path, error, 'cannot read file');
      t.status = 'failed';
      t.carry = null;
      await this.openFiles.release(t);
      return undefined;
    }
  }

  /**
   * Creates the reader at the file's offset. A compressed file is first decompressed whole without keeping
   * anything (its CRC is only known at its end): only a file that checks is read, then skipped up to its offset.
   */
  private async openReader(t: Tracked): Promise<boolean> {
    const handle = t.handle;
    if (handle === null) return false;
    const onRead = this.hooks.onRead;
    const path = t.path;
    if (!t.compressed) {
      t.reader = new FdReader(handle, readPosition(t), onRead && ((n) => onRead(path, n)), {
        observe: (position, bytes) => this.noteHead(t, position, bytes),
        verify: (position) => this.stillReadable(t, handle, position),
        verifyFirst: this.options.follow,
      });
      return true;
    }
    const stopping = (this.out as SourceOutput).stopping;
    const pending = t.gzipCheck ?? checkGzip(handle, stopping);
    t.gzipCheck = null;
    let check: GzipCheck;
    try {
      check = await pending;
    } catch (error) {
      if (stopping.aborted) return false;
      throw error;
    }
    if (!check.ok) {
      await this.brokenGzip(t, check);
      return false;
    }
    t.incompleteSince = 0;
    if (check.length < t.cursor.offset)
      throw offsetBeyondGzip(this.ctx.pipeline, t.path, t.cursor.offset, check.length);
    const gzip = gunzipReader(handle, onRead && ((n) => onRead(path, n)));
    t.gzip = gzip;
    t.reader = gzip;
    t.carry = null;
    const buf = this.buf as Buffer;
    for (let skip = t.cursor.offset; skip > 0; ) {
      const n = await gzip.read(buf, 0, Math.min(buf.length, skip));
      if (n === 0) throw new Error('compressed file changed while it was read');
      skip -= n;
    }
    return true;
  }

  /**
   * A compressed file that did not check: none of its lines is emitted, it keeps its offset, and it is an
   * input error, except in follow mode for a file cut short (probably still being written): that one is read
   * once complete, and is reported only if it stays cut for rotate_wait_ms.
   */
  private async brokenGzip(t: Tracked, check: Extract<GzipCheck, { ok: false }>): Promise<void> {
    t.status = 'failed';
    t.carry = null;
    await this.openFiles.release(t);
    if (check.problem === 'cut' && this.options.follow) {
      if (t.incompleteSince === 0) {
        t.incompleteSince = Date.now();
        t.lastGrowth = t.incompleteSince;
        this.ctx.logger.info(
          'compressed file ends in the middle of its data, probably still being written; it is read once complete',
          {
            path: t.path,
          },
        );
      }
      return;
    }
    this.inputError(t.path, t.cursor.offset, brokenGzip(t.path, check, t.cursor.line));
  }

  /** Emits a file's last line that never got its newline. */
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

  /**
   * The file was truncated in place (copytruncate): what had been read of it is kept as truncated away, so that
   * its copy continues there (an already known copy at once), and the file is read again from its start.
   */
  private async restartTruncated(t: Tracked, size: number, log: boolean): Promise<void> {
    if (log) {
      this.ctx.logger.info('file was truncated (copytruncate?); reading it again from the start', {
        path: t.path,
        offset: t.cursor.offset,
        size,
      });
    }
    const former: FileEntry = { ...entryOf(t), truncated: true };
    setGeneration(t, t.generation + 1);
    t.cursor.offset = 0;
    t.cursor.line = 0;
    t.cursor.skipping = false;
    t.carry = null;
    t.size = size;
    t.atEof = false;
    // Identity by device and inode until the new content is long enough to fingerprint, from what is read of it.
    t.fingerprint = hashBytes(Buffer.alloc(0));
    t.head = Buffer.alloc(0);
    this.copyIndex = null;
    if (t.reader instanceof FdReader) t.reader.position = 0;
    // Even at offset 0: a copy taken for a duplicate of content of which nothing was read must be read whole.
    if (former.fingerprint_bytes === this.options.fingerprint_bytes) await this.keepTruncatedAway(former, t);
  }

  private async keepTruncatedAway(former: FileEntry, from: Tracked): Promise<void> {
    const copy = this.order.find(
      (o) =>
        o !== from &&
        o.duplicate &&
        !o.compressed &&
        o.fingerprint.hash === former.fingerprint &&
        o.fingerprint.bytes === former.fingerprint_bytes,
    );
    if (copy && (await this.resumeCopy(copy, former))) return;
    // The copy is made before the truncation, so its notification came first and it is known already, unless
    // it is in a directory not watched: the next full scan finds it.
    this.kept.push({ entry: former, afterScan: this.fullScans });
  }

  /** A copy taken for a duplicate turns out to hold content truncated away: it continues where that was read. */
  private async resumeCopy(copy: Tracked, former: FileEntry): Promise<boolean> {
    let size = copy.size;
    let mtimeMs = copy.mtimeMs;
    try {
      const st = await stat(copy.path);
      if (st.dev === copy.dev && st.ino === copy.ino) {
        size = st.size;
        mtimeMs = st.mtimeMs;
      } else {
        // Renamed since (the generations shifted): the next scan finds it by its identity.
        this.pendingPaths.add(copy.path);
      }
    } catch {
      this.pendingPaths.add(copy.path);
    }
    // Shorter: lines the original got after the copy were read from it already; the copy has nothing new.
    if (size < former.offset) return false;
    this.ctx.logger.info('file is the copy of content truncated away from another; reading it from where that was', {
      path: copy.path,
      copy_of: former.path,
      offset: former.offset,
    });
    this.continueAt(copy, former);
    copy.duplicate = false;
    copy.status = 'reading';
    copy.size = size;
    copy.mtimeMs = mtimeMs;
    copy.atEof = false;
    copy.dirty = true;
    copy.lastGrowth = Date.now();
    return true;
  }

  private continueAt(t: Tracked, entry: FileEntry): void {
    // A copy continuing content truncated away from another file keeps its own (first) generation.
    if (ownEntry(t, entry)) setGeneration(t, entry.generation ?? 0);
    t.cursor.offset = entry.offset;
    t.cursor.line = entry.line;
    t.cursor.skipping = entry.skipping === true;
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
    const files = this.order.map(entryOf);
    for (const kept of this.kept) if (kept.entry.truncated) files.push(kept.entry);
    return { files };
  }

  // -------------------------------------------------------------------------------- descriptors

  /** Follow mode: gives the file a descriptor, reopening it by path; false when it has none (logged if need be). */
  private async ensureOpen(t: Tracked): Promise<boolean> {
    if (t.handle !== null) return true;
    if (!this.openFiles.makeRoom()) return false;
    let handle: FileHandle;
    try {
      handle = await open(t.path, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        this.pendingPaths.add(t.path);
        return false;
      }
      this.report(t.path, error, 'cannot open file');
      t.status = 'failed';
      return false;
    }
    try {
      const st = await handle.stat();
      if (st.dev !== t.dev || st.ino !== t.ino) {
        // The path leads to another file now: the next scan sorts out where this one went.
        await handle.close();
        this.pendingPaths.add(t.path);
        return false;
      }
    } catch (error) {
      await handle.close().catch(() => {});
      this.report(t.path, error, 'cannot read file');
      t.status = 'failed';
      return false;
    }
    this.openFiles.hold(t, handle);
    return true;
  }

  // ---------------------------------------------------------------------------------- discovery

  /**
   * Matches the globs (or, `scoped`, only the pending paths a notification named) and reconciles them with what
   * is known: renames within the globs keep their state, a path now leading to another file rotates the old
   * one, new files are admitted.
   */
  private async scan(initial: boolean, scoped = false): Promise<void> {
    const problems: DiscoveryProblem[] = [];
    let candidates: Candidate[];
    let scope: Set<string> | null = null;
    /** Files named by notifications that do not match the globs, by device and inode: where files were renamed to. */
    const movedTo = new Map<string, string>();
    if (scoped) {
      scope = new Set(this.pendingPaths);
      this.pendingPaths.clear();
      try {
        const checked = await this.matcher.check(scope, problems);
        candidates = checked.candidates;
        for (const o of checked.others) movedTo.set(keyOf(o.dev, o.ino), o.path);
        // A directory (new, renamed): only a full listing tells what is in it.
        if (checked.directory) scope = null;
      } catch (error) {
        this.report('(glob)', error, 'cannot list files');
        return;
      }
      if (scope === null) return this.scan(false);
    } else {
      this.fullScans++;
      this.pendingPaths.clear();
      try {
        candidates = await this.matcher.list(problems, initial ? undefined : (path) => this.followedAt(path));
      } catch (error) {
        this.report('(glob)', error, 'cannot list files');
        return;
      }
    }
    const scanNumber = this.fullScans;
    for (const problem of problems) this.report(problem.path, problem.error, 'cannot stat file');
    if (initial && candidates.length === 0) {
      const patterns = this.options.paths.map((p) => `\`${p}\``).join(', ');
      this.ctx.logger.warn(
        `no file matches ${patterns}${this.options.follow ? ' yet; files are picked up as they appear' : ''}`,
        { cwd: this.ctx.baseDir },
      );
    }
    if (initial) {
      // Files whose device and inode a checkpoint entry names claim it before fingerprint-only matches.
      const named = this.claims.keys();
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
      const rotated = this.rotatedByKey.get(key);
      const known = this.byKey.get(key) ?? (rotated?.status === 'rotated' ? rotated : undefined);
      if (known && (await this.stillSameFile(known, c))) {
        this.byKey.set(key, known);
        await this.revisit(known, c);
        continue;
      }
      if (known) await this.retire(known, movedTo);
      // The file opened may not be the one listed (renamed in between): the one admitted counts as seen.
      const admitted = await this.admit(c, initial);
      if (admitted !== undefined) seen.add(admitted);
    }
    for (const t of [...this.byKey.values()]) {
      if (seen.has(keyOf(t.dev, t.ino)) || (scope !== null && !scope.has(t.path))) continue;
      if (t.status === 'reading' && this.options.follow) await this.retire(t, movedTo);
      else if (t.status !== 'reading') await this.forget(t);
    }
    this.claims.clear();
    this.copyIndex = null;
    if (scope === null) this.kept = this.kept.filter((k) => k.afterScan >= scanNumber);
    if (this.orderChanged) {
      // A rotated set (`access.log.2.gz`, `access.log.1`, `access.log`) in the order it was written, which path
      // order reverses; otherwise oldest modified first.
      sortForReading(this.order);
      this.orderChanged = false;
    }
    if (this.options.follow) {
      const dirs = new Set(this.matcher.baseDirs);
      for (const t of this.byKey.values()) dirs.add(parentDir(t.path));
      this.watcher.watch(dirs);
    }
  }

  /**
   * A followed file's own record as the candidate at its path, without a stat: in a watched directory, a rename
   * would have been notified, and the sweep checks paths for notifications that did not come.
   */
  private followedAt(path: string): Candidate | undefined {
    const t = this.byPath.get(path);
    if (t === undefined || t.status !== 'reading' || !this.watcher.watching(parentDir(path))) return undefined;
    return { path, dev: t.dev, ino: t.ino, size: t.size, mtimeMs: t.mtimeMs };
  }

  /** A known device and inode at a matching path: the same file unless the inode was reused. */
  private async stillSameFile(t: Tracked, c: Candidate): Promise<boolean> {
    try {
      if (t.handle) {
        const st = await t.handle.stat();
        if (st.nlink === 0) return false;
        if (!t.compressed && t.status === 'reading' && this.options.follow && (await this.replaced(t, st.size))) {
          await this.restartTruncated(t, st.size, true);
        }
        return true;
      }
      if (c.size === t.size && c.mtimeMs === t.mtimeMs) return true;
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

  /** copytruncate and friends: the file shrank below the read point or its identifying bytes, or they changed. */
  private async replaced(t: Tracked, size: number): Promise<boolean> {
    if (size < readPosition(t) || size < t.fingerprint.bytes) return true;
    if (t.fingerprint.bytes === 0 || t.handle === null) return false;
    const current = await fingerprint(t.handle, false, t.fingerprint.bytes);
    return current.hash !== t.fingerprint.hash;
  }

  private async revisit(t: Tracked, c: Candidate): Promise<void> {
    if (t.path !== c.path) {
      if (this.byPath.get(t.path) === t) this.byPath.delete(t.path);
      t.path = c.path;
      t.cursor.file = c.path;
      this.orderChanged = true;
    }
    this.byPath.set(c.path, t);
    if (t.status === 'rotated') {
      t.status = 'reading';
      this.rotatedByKey.delete(keyOf(t.dev, t.ino));
    }
    if (t.status === 'reading') {
      // Its size is what the reader saw; a different size here only says there is something to look at.
      if (c.size !== t.size) t.dirty = true;
      return;
    }
    if (t.status === 'failed' && this.options.follow) {
      if (c.size !== t.size) {
        // Changed since it failed: try again from its offset.
        t.status = 'reading';
        t.atEof = false;
        t.dirty = true;
        t.lastGrowth = Date.now();
        this.reported.delete(t.path);
      } else if (t.incompleteSince > 0 && Date.now() - t.lastGrowth >= this.options.rotate_wait_ms) {
        t.incompleteSince = 0;
        this.inputError(t.path, t.cursor.offset, gzipStaysCut(t.path, this.options.rotate_wait_ms));
      }
    }
    t.size = c.size;
    t.mtimeMs = c.mtimeMs;
  }

  /**
   * No matching path leads to this file any more: drain it through its descriptor, then forget it. A file that had
   * no descriptor (idle) is reopened under the name a notification says it was renamed to, when there is one.
   */
  private async retire(t: Tracked, movedTo: ReadonlyMap<string, string>): Promise<void> {
    const key = keyOf(t.dev, t.ino);
    this.byKey.delete(key);
    if (this.byPath.get(t.path) === t) this.byPath.delete(t.path);
    const moved = movedTo.get(key);
    if (t.status === 'reading' && t.handle === null && moved !== undefined && this.options.follow) {
      const path = t.path;
      t.path = moved;
      if (!(await this.ensureOpen(t))) this.pendingPaths.delete(moved);
      t.path = path;
    }
    if (t.status === 'reading' && t.handle !== null && this.options.follow) {
      t.status = 'rotated';
      t.rotatedAt = Date.now();
      this.rotatedByKey.set(keyOf(t.dev, t.ino), t);
      this.ctx.logger.info('file rotated away; finishing it through its open descriptor', { path: t.path });
    } else {
      // Its new name may be notified later (or it may be renamed back): it continues where it was then.
      if (t.status === 'reading' && this.options.follow)
        this.kept.push({ entry: entryOf(t), afterScan: this.fullScans });
      void this.forget(t);
    }
  }

  private async forget(t: Tracked): Promise<void> {
    const key = keyOf(t.dev, t.ino);
    if (this.byKey.get(key) === t) this.byKey.delete(key);
    if (this.byPath.get(t.path) === t) this.byPath.delete(t.path);
    if (this.rotatedByKey.get(key) === t) this.rotatedByKey.delete(key);
    this.order = this.order.filter((o) => o !== t);
    await this.openFiles.release(t);
  }

  /** A file not known under its device and inode: find where to start in it; its key, once admitted. */
  private async admit(c: Candidate, initial: boolean): Promise<string | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(c.path, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      this.report(c.path, error, 'cannot open file');
      return;
    }
    try {
      const st = await handle.stat();
      const key = keyOf(st.dev, st.ino);
      if (this.byKey.has(key) || this.rotatedByKey.has(key)) {
        // Renamed between its listing and its opening: the path now leads to a file already known. The next scan
        // looks at the path again.
        await handle.close();
        this.pendingPaths.add(c.path);
        return;
      }
      const { compressed, fingerprint: fp } = await identify(handle, this.options.fingerprint_bytes);
      const input = inputOf(st);
      const t: Tracked = {
        cursor: newCursor(this.ctx.id, c.path, input),
        input,
        generation: 0,
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
        handle: null,
        reader: null,
        gzip: null,
        gzipCheck: null,
        incompleteSince: 0,
        size: st.size,
        mtimeMs: st.mtimeMs,
        lastGrowth: Date.now(),
        rotatedAt: 0,
        atEof: false,
        dirty: true,
        head: null,
        entry: null,
      };
      await this.placeCursor(t, handle, initial);
      if (!compressed && t.cursor.offset === 0 && fp.bytes < this.options.fingerprint_bytes) t.head = Buffer.alloc(0);
      this.byKey.set(key, t);
      this.reported.delete(c.path);
      this.byPath.set(t.path, t);
      this.order.push(t);
      this.orderChanged = true;
      this.indexForCopies(t);
      this.hooks.onTracked?.(t.path, t.cursor.offset);
      // Without follow, descriptors are opened one at a time while reading; with it, within max_open_files.
      if (this.options.follow && t.status === 'reading' && this.openFiles.makeRoom()) this.openFiles.hold(t, handle);
      else await handle.close();
      return key;
    } catch (error) {
      await handle.close().catch(() => {});
      if (error instanceof EtlError) throw error;
      this.report(c.path, error, 'cannot read file');
    }
  }

  /** Sets where reading starts: a checkpoint entry, content truncated away, a duplicate of a known file, start_at, or 0. */
  private async placeCursor(t: Tracked, handle: FileHandle, initial: boolean): Promise<void> {
    const claimed = await this.claim(t, handle);
    const entry = claimed?.entry;
    // Read from its start although a checkpoint knew this device and inode: its content was replaced since (or the
    // inode reused), and the new content's lines must not get the keys of the old content's.
    const known = this.claims.lastGeneration(t.dev, t.ino);
    if (known !== undefined && (entry === undefined || !ownEntry(t, entry))) setGeneration(t, known + 1);
    if (entry !== undefined && (entry.truncated || claimed?.kept)) {
      const check = t.compressed ? await checkGzip(handle, (this.out as SourceOutput).stopping) : undefined;
      if (check) t.gzipCheck = Promise.resolve(check);
      const length = check === undefined ? t.size : check.ok ? check.length : Number.POSITIVE_INFINITY;
      if (length >= entry.offset) {
        const message = entry.truncated
          ? 'file is the copy of content truncated away from another; reading it from where that was'
          : 'file no longer followed is back under a matching name (or a copy of it); reading it from where it was';
        this.ctx.logger.info(message, { path: t.path, copy_of: entry.path, offset: entry.offset });
        return this.continueAt(t, entry);
      }
      // Shorter than what was read of the content truncated away: lines the original got after the copy were
      // read from it already, the copy has nothing new. Shorter than a finished file: other content, read whole.
      if (entry.truncated) return this.markDuplicate(t, entry.path);
    } else if (entry !== undefined) {
      if (entry.duplicate) return this.markDuplicate(t, entry.path);
      if (t.compressed && entry.complete) {
        t.complete = true;
        t.status = 'done';
        return;
      }
      if (t.compressed && entry.offset > 0) {
        // Checked now, before anything is emitted: a checkpoint beyond its end does not belong to it.
        const check = await checkGzip(handle, (this.out as SourceOutput).stopping);
        t.gzipCheck = Promise.resolve(check);
        if (check.ok && check.length < entry.offset)
          throw offsetBeyondGzip(this.ctx.pipeline, t.path, entry.offset, check.length);
      } else if (!t.compressed && t.size < entry.offset) {
        return this.shrankSince(t, entry);
      }
      return this.continueAt(t, entry);
    }
    if (entry !== undefined && !entry.truncated && claimed?.kept) {
      this.ctx.logger.info('file has the first bytes of one no longer followed, but less content; reading it whole', {
        path: t.path,
      });
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

  /**
   * A file shorter than its checkpoint offset: modified since the checkpoint, it shrank (truncated while the
   * pipeline was stopped) and is read again from its start; not modified since, the checkpoint was not taken
   * on it (an older copy put back, the state of another pipeline), and the source refuses to start.
   */
  private shrankSince(t: Tracked, entry: FileEntry): void {
    const fields = { path: t.path, offset: entry.offset, size: t.size };
    const readAgain = () => setGeneration(t, (this.claims.lastGeneration(t.dev, t.ino) ?? entry.generation ?? 0) + 1);
    if (entry.mtime_ms === undefined) {
      this.ctx.logger.warn(
        'file is shorter than its checkpoint offset, and the checkpoint (written by an older version) cannot tell ' +
          'whether it shrank since; reading it from the start (lines it had before may be read twice)',
        fields,
      );
      readAgain();
      return;
    }
    const modified = t.mtimeMs > entry.mtime_ms || (t.mtimeMs === entry.mtime_ms && t.size !== entry.size);
    if (modified) {
      this.ctx.logger.warn('file shrank since the checkpoint (it was modified after); reading it from the start', {
        ...fields,
        modified: new Date(t.mtimeMs).toISOString(),
      });
      readAgain();
      return;
    }
    throw offsetBeyondFile(this.ctx.pipeline, t.path, entry.offset, t.size, t.mtimeMs);
  }

  /**
   * The checkpoint entry of this file: same device and inode with matching content, or a full fingerprint;
   * or content truncated away from another file, of which this one is the copy.
   */
  private async claim(t: Tracked, handle: FileHandle): Promise<{ entry: FileEntry; kept: boolean } | undefined> {
    for (const e of this.claims.withKey(t.dev, t.ino)) {
      if (!e.truncated && (await this.matches(t, handle, e))) return { entry: this.claims.take(e), kept: false };
    }
    if (t.fingerprint.bytes === this.options.fingerprint_bytes) {
      for (const e of this.claims.withFingerprint(t.fingerprint.hash, t.fingerprint.bytes)) {
        if (this.copyCandidate(t, e)) return { entry: this.claims.take(e), kept: false };
      }
    }
    for (let i = 0; i < this.kept.length; i++) {
      const e = (this.kept[i] as { entry: FileEntry }).entry;
      const same = !e.truncated && e.dev === t.dev && e.ino === t.ino;
      if ((same || this.copyCandidate(t, e)) && (await this.matches(t, handle, e))) {
        this.kept.splice(i, 1);
        return { entry: e, kept: true };
      }
    }
    return undefined;
  }

  /** Whether an entry can be claimed by fingerprint alone; content truncated away never by the file it left. */
  private copyCandidate(t: Tracked, e: FileEntry): boolean {
    return (
      e.fingerprint_bytes === this.options.fingerprint_bytes && !(e.truncated && e.dev === t.dev && e.ino === t.ino)
    );
  }

  private matches(t: Tracked, handle: FileHandle, e: FileEntry): Promise<boolean> {
    const expected: Fingerprint = { hash: e.fingerprint, bytes: e.fingerprint_bytes };
    return sameContent(handle, t.compressed, t.fingerprint, expected);
  }

  /** A known file with the same full fingerprint under another inode: this one is a copy of it. */
  private copyOf(t: Tracked): Tracked | undefined {
    const bytes = this.options.fingerprint_bytes;
    if (t.fingerprint.bytes < bytes) return undefined;
    if (this.copyIndex === null) {
      this.copyIndex = new Map();
      for (const o of this.order) this.indexForCopies(o);
    }
    return this.copyIndex.get(t.fingerprint.hash);
  }

  private indexForCopies(t: Tracked): void {
    const index = this.copyIndex;
    if (index === null || t.duplicate || t.fingerprint.bytes !== this.options.fingerprint_bytes) return;
    if (!index.has(t.fingerprint.hash)) index.set(t.fingerprint.hash, t);
  }

  private markDuplicate(t: Tracked, of: string): void {
    this.ctx.logger.info('file has the same first bytes as one already read; skipping it as a copy', {
      path: t.path,
      copy_of: of,
    });
    t.duplicate = true;
    t.status = 'done';
  }

  /** Reopens a file for reading without follow; false (reported) when it is gone or was replaced. */
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
      this.report(t.path, error, 'cannot open file');
      t.status = 'failed';
      return false;
    }
  }

  /**
   * Whether reading on at `position` reads the same content: not if the file is now shorter (truncated), or its
   * first bytes changed (truncated and refilled past the position while the reader waited).
   */
  private async stillReadable(t: Tracked, handle: FileHandle, position: number): Promise<boolean> {
    try {
      const { size } = await handle.stat();
      // Shorter than what was read, or than the first bytes that identified it: truncated.
      if (size < position || size < t.fingerprint.bytes) return false;
      if (t.fingerprint.bytes === 0) return true;
      return (await fingerprint(handle, false, t.fingerprint.bytes)).hash === t.fingerprint.hash;
    } catch {
      // The read itself reports the error.
      return true;
    }
  }

  /** Keeps the first bytes read of a file whose fingerprint is not complete yet. */
  private noteHead(t: Tracked, position: number, bytes: Buffer): void {
    const head = t.head;
    if (head === null || position !== head.length) return;
    const take = Math.min(bytes.length, this.options.fingerprint_bytes - head.length);
    t.head = Buffer.concat([head, bytes.subarray(0, take)]);
  }

  /**
   * Completes the fingerprint of a file that was shorter than fingerprint_bytes: from the bytes the reader read,
   * so that it is the fingerprint of the content read even if the file was truncated and refilled since. A file
   * read from an offset has no such bytes: its first bytes are read again, and must begin as they did.
   */
  private async refreshFingerprint(t: Tracked): Promise<void> {
    const want = this.options.fingerprint_bytes;
    if (t.head !== null) {
      if (t.head.length > t.fingerprint.bytes) t.fingerprint = hashBytes(t.head);
      if (t.head.length >= want) t.head = null;
    } else if (t.handle !== null) {
      const current = await fingerprint(t.handle, t.compressed, want);
      if (!(await sameContent(t.handle, t.compressed, current, t.fingerprint))) {
        await this.restartTruncated(t, (await t.handle.stat()).size, true);
        return;
      }
      t.fingerprint = current;
    }
    this.copyIndex = null;
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

  /** An input that could not be read completely: counted and logged by the runtime as an error of the run. */
  private inputError(path: string, offset: number, reason: string): void {
    if (this.out?.stopping.aborted) return;
    this.out?.inputError(reason, { file: path, offset });
  }

  /**
   * A file that cannot be opened or read is an input error, reported once per path and error; one that vanished
   * between listing and opening is a rotation's ordinary race, only noted.
   */
  private report(path: string, error: unknown, message: string): void {
    if (this.out?.stopping.aborted) return;
    const code = (error as NodeJS.ErrnoException | null)?.code ?? errorMessage(error);
    if (this.reported.get(path) === code) return;
    this.reported.set(path, code);
    if (code === 'ENOENT') {
      this.ctx.logger.info(`${message}: it no longer exists`, { path });
      return;
    }
    this.out?.inputError(`${message} ${path}: ${errorMessage(error)}; the other files go on`, { file: path });
  }
}

/** A checkpoint entry of this very file (not content truncated away from another that this one copies). */
function ownEntry(t: Tracked, entry: FileEntry): boolean {
  return !entry.truncated && entry.dev === t.dev && entry.ino === t.ino;
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
