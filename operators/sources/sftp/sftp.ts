/**
 * The `sftp` source: lists a remote directory, and reads each matching file from where the checkpoint left it:
 * a new file from its start, a plain file that grew from the end of its last complete line, a gzip file whole
 * (a gzip file that grew, by `gzip >>`, is decompressed again and what was read is skipped). Without inodes,
 * files are known by the hash of their first bytes (identity.ts): a rotated file continues under its new name,
 * and content replaced under one name is read again from its start. Each listing and
 * each file is one step: a step that fails because the connection was lost reconnects (the engine's retrier)
 * and resumes after the last line emitted, so nothing is read twice or lost.
 *
 * The line splitting and read loop are the ones the file and stdin sources use (operators/shared/line-reader).
 */
import { Transform, type TransformCallback, pipeline, type Readable } from 'node:stream';
import { posix } from 'node:path';
import { createGunzip } from 'node:zlib';
import picomatch from 'picomatch';
import type { SFTPWrapper } from 'ssh2';
import type SftpClient from 'ssh2-sftp-client';
import { EtlError, errorMessage, isRetriable } from '../../../engine/errors.ts';
import type { Source, SourceContext, SourceOutput } from '../../../engine/operator.ts';
import { retry, sleep } from '../../../engine/retry.ts';
import { FINGERPRINT_BYTES, fingerprintOf, type Head, readHead } from './identity.ts';
import { parseRemoteInputsPosition, type RemoteInput, type RemoteInputsPosition } from './position.ts';
import { StreamReader } from '../../shared/line-reader/chunks.ts';
import { allocateReadBuffer, Batch, type LineCursor, newCursor } from '../../shared/line-reader/lines.ts';
import { IDLE_FLUSH_MS, type PumpState, pump } from '../../shared/line-reader/pump.ts';
import { type Credentials, readCredentials, Session } from './connection.ts';
import { RemoteRangeReader } from './range-reader.ts';
import type { SftpSourceOptions } from './schema.ts';

/** A matching file as the listing showed it. */
interface Listed {
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
  readonly gzip: boolean;
}

/** Status codes of the SFTP protocol (draft-ietf-secsh-filexfer-02) that ssh2 puts in `code`. */
const SFTP_NO_SUCH_FILE = 2;
const SFTP_PERMISSION_DENIED = 3;

export function createSftpSource(options: SftpSourceOptions, ctx: SourceContext): Source {
  return new SftpSource(options, ctx);
}

class SftpSource implements Source {
  private readonly options: SftpSourceOptions;
  private readonly ctx: SourceContext;
  private readonly matches: (name: string) => boolean;
  /** What has been read of each file, as the next emitted position will say; by remote path. */
  private readonly inputs = new Map<string, RemoteInput>();
  /** Per name, the last generation of content first read under it (the `~<n>` of RemoteInput.input). */
  private readonly generations = new Map<string, number>();
  /** The last listing, for the lag. */
  private listed: readonly Listed[] = [];
  /** Paths whose read failed for a reason a reconnection does not cure, reported once until they read again. */
  private readonly reported = new Set<string>();
  private credentials: Credentials | undefined;
  private session: Session | undefined;
  private readonly reconnects: { inc(value?: number): void };
  private readonly filesRead: { inc(value?: number): void };
  private readonly truncatedLines: { inc(value?: number): void };
  private doneBytes = 0;
  private totalBytes = 0;
  private closed = false;

  constructor(options: SftpSourceOptions, ctx: SourceContext) {
    this.options = options;
    this.ctx = ctx;
    this.matches = picomatch(options.pattern, { dot: false });
    const restored = parseRemoteInputsPosition(ctx.restoredPosition);
    if (restored.problem) {
      throw new EtlError(
        'ETL_STATE_MISMATCH',
        `the checkpoint's position for source ${ctx.id} is not a position of the sftp source: ${restored.problem}. ` +
          `Was the stage id used by another type of source? To go on, start pipeline ${ctx.pipeline} over with ` +
          '`etl apply --reset` (every source reads from its start; sinks that append will hold the records twice)',
      );
    }
    for (const [name, generation] of Object.entries(restored.position?.generations ?? {})) {
      this.generations.set(name, generation);
    }
    for (const input of restored.position?.inputs ?? []) {
      this.inputs.set(input.path, input);
      // An older position's entries are keyed by their path: content read under that name later must not be.
      if (input.input === undefined && !this.generations.has(input.path)) this.generations.set(input.path, 0);
    }
    this.reconnects = ctx.metrics.counter(
      'etl_sftp_reconnects_total',
      'Connections to the SFTP server made again after one was lost or failed.',
    );
    this.filesRead = ctx.metrics.counter(
      'etl_sftp_files_read_total',
      'Files (or grown tails of files) read to the end of what was listed.',
    );
    this.truncatedLines = ctx.metrics.counter(
      'etl_source_truncated_lines_total',
      'Lines longer than max_line_bytes, cut and marked truncated',
    );
  }

  async run(out: SourceOutput): Promise<void> {
    this.ctx.signals?.sourceState(() => ({ lagBytes: this.lagBytes() }));
    this.credentials = await readCredentials(this.options, this.ctx.baseDir);
    try {
      for (;;) {
        const listed = await this.step(out, `listing ${this.options.directory}`, (session) => this.list(session));
        this.listed = listed;
        await this.step(out, `identifying the files in ${this.options.directory}`, (session) =>
          this.reconcile(session, listed),
        );
        const todo = listed.filter((file) => this.plan(file));
        if (!this.options.follow) {
          this.totalBytes = todo.reduce((sum, file) => sum + file.size - this.resumeOffset(file), 0);
          out.progress(0, this.totalBytes);
        }
        for (const file of todo) {
          if (out.stopping.aborted) return;
          await this.step(out, `reading ${file.path}`, (session) => this.read(session, file, out));
        }
        if (!this.options.follow || out.stopping.aborted) return;
        await sleep(this.options.poll_interval_seconds * 1000, out.stopping).catch(() => {});
        if (out.stopping.aborted) return;
      }
    } catch (error) {
      // A stop that interrupts a step (a backoff, a read) ends the run as a stop: what was not emitted is read again.
      if (out.stopping.aborted) return;
      throw error;
    }
  }

  /** Runs `fn` on a live connection; a failure that lost the connection reconnects and runs it again. */
  private step<T>(out: SourceOutput, what: string, fn: (session: Session) => Promise<T>): Promise<T> {
    return retry(async () => fn(await this.connected()), {
      policy: { max_attempts: this.options.max_attempts, initial_backoff_ms: 500, max_backoff_ms: 30_000 },
      signal: out.stopping,
      retriable: (error) => this.worthReconnecting(error),
      onRetry: (error, attempt, delayMs) => {
        this.ctx.logger.warn(`SFTP ${what} failed; reconnecting`, {
          server: `${this.options.host}:${this.options.port}`,
          error: errorMessage(error),
          attempt,
          delay_ms: delayMs,
        });
        const lost = this.session;
        this.session = undefined;
        if (lost) {
          this.reconnects.inc();
          void lost.close();
        }
      },
    });
  }

  private async connected(): Promise<Session> {
    if (this.session?.alive) return this.session;
    const dead = this.session;
    this.session = undefined;
    await dead?.close();
    this.session = await Session.open(this.options, this.credentials ?? {}, this.ctx.logger);
    return this.session;
  }

  /** A failure a new connection may cure: the connection is gone, or the network failed; never a refusal. */
  private worthReconnecting(error: unknown): boolean {
    if (error instanceof EtlError) return error.retriable;
    if (this.session !== undefined && !this.session.alive) return true;
    const level = (error as { level?: unknown } | null)?.level;
    if (level === 'client-socket' || level === 'client-timeout') return true;
    if (/no response from server|not connected|no sftp connection/i.test(errorMessage(error))) return true;
    return isRetriable(error);
  }

  private async list(session: Session): Promise<Listed[]> {
    const directory = this.options.directory;
    let entries: SftpClient.FileInfo[];
    try {
      entries = await session.client.list(directory, (entry) => entry.type === '-' && this.matches(entry.name));
    } catch (error) {
      if (!session.alive || !isStatus(error, SFTP_NO_SUCH_FILE, SFTP_PERMISSION_DENIED)) throw error;
      throw new EtlError(
        'ETL_RUN_SOURCE_FAILED',
        `cannot list directory ${directory} on the SFTP server ${this.options.host}:${this.options.port}: ` +
          errorMessage(error),
      );
    }
    // Oldest modified first, as logs are written; equal times in name order (access.log.1 before access.log.2).
    entries.sort((a, b) => a.modifyTime - b.modifyTime || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return entries.map((entry) => ({
      path: posix.join(directory, entry.name),
      size: entry.size,
      mtimeMs: entry.modifyTime,
      gzip: entry.name.endsWith('.gz'),
    }));
  }

  /**
   * Matches the listing with what was read: a file whose size or time changed is checked by its first bytes; one
   * that shrank or starts otherwise is other content under that name (a rotation, a new upload) and is read from
   * its start; a file under a new name whose first bytes are those of content no longer under its name (renamed
   * away, or replaced) continues where that was read. Files gone are forgotten: the position holds what can still
   * be read. Run again whole after a lost connection.
   */
  private async reconcile(session: Session, listed: readonly Listed[]): Promise<void> {
    const sftp = session.sftp as SFTPWrapper;
    const present = new Set(listed.map((file) => file.path));
    const displaced: RemoteInput[] = [];
    for (const [path, entry] of this.inputs) {
      if (present.has(path)) continue;
      displaced.push(entry);
      this.inputs.delete(path);
    }
    const fresh: Array<{ file: Listed; head?: Head }> = [];
    for (const file of listed) {
      const known = this.inputs.get(file.path);
      if (known === undefined) {
        fresh.push({ file });
        continue;
      }
      if (file.size === known.size && file.mtimeMs === known.mtime_ms) continue;
      const shrank = file.size < known.size || (!file.gzip && file.size < known.offset);
      const head = await this.headOf(sftp, file);
      if (head === undefined) continue;
      // An entry of an older position has no fingerprint: taken as the same content, and given one now.
      const sameStart =
        known.fingerprint === undefined ||
        (head.bytes.length >= (known.fingerprint_bytes ?? 0) &&
          fingerprintOf(head, known.fingerprint_bytes) === known.fingerprint);
      if (!shrank && sameStart) {
        // The same content: its fingerprint grows with it up to its full length; touched only, it is not news.
        const longer = known.fingerprint === undefined || head.bytes.length > (known.fingerprint_bytes ?? 0);
        this.inputs.set(file.path, {
          ...known,
          ...(file.size === known.size ? { mtime_ms: file.mtimeMs } : {}),
          ...(longer ? { fingerprint: fingerprintOf(head), fingerprint_bytes: head.bytes.length } : {}),
        });
        continue;
      }
      this.ctx.logger.warn(
        `remote file ${shrank ? 'shrank since it was read' : 'starts with other bytes than the file read under its name'}: ` +
          'reading it again from its start',
        { file: file.path, size: file.size, read_size: known.size },
      );
      this.inputs.delete(file.path);
      displaced.push(known);
      fresh.push({ file, head });
    }
    for (const { file, head: listedHead } of fresh) {
      const head = listedHead ?? (await this.headOf(sftp, file));
      if (head === undefined) continue;
      const fingerprint = fingerprintOf(head);
      const at =
        head.bytes.length === FINGERPRINT_BYTES
          ? displaced.findIndex(
              // Never the content this very name held: that one was replaced, not renamed.
              (e) => e.fingerprint_bytes === FINGERPRINT_BYTES && e.fingerprint === fingerprint && e.path !== file.path,
            )
          : -1;
      const former = at >= 0 ? displaced.splice(at, 1)[0] : undefined;
      if (former !== undefined) {
        this.ctx.logger.info('remote file is one read under another name: reading it from where that was', {
          file: file.path,
          was: former.path,
          offset: former.offset,
        });
        this.inputs.set(file.path, movedTo(former, file));
      } else {
        this.inputs.set(file.path, this.firstSight(file, head));
      }
    }
  }

  /**
   * The file's first bytes; undefined when it cannot be read now (gone since the listing, not readable): the read
   * that follows reports it, and the next listing looks again.
   */
  private async headOf(sftp: SFTPWrapper, file: Listed): Promise<Head | undefined> {
    try {
      return await readHead(sftp, file.path, file.size, file.gzip);
    } catch (error) {
      if (isStatus(error, SFTP_NO_SUCH_FILE, SFTP_PERMISSION_DENIED) && !(error instanceof EtlError)) return undefined;
      throw error;
    }
  }

  /** The entry of content never read: from its start, under an `input` no content read under that name had. */
  private firstSight(file: Listed, head: Head): RemoteInput {
    const last = this.generations.get(file.path);
    const generation = last === undefined ? 0 : last + 1;
    this.generations.set(file.path, generation);
    return {
      path: file.path,
      size: 0,
      mtime_ms: 0,
      offset: 0,
      line: 0,
      ...(head.bytes.length > 0 ? { fingerprint: fingerprintOf(head), fingerprint_bytes: head.bytes.length } : {}),
      input: generation === 0 ? file.path : `${file.path}~${generation}`,
    };
  }

  /** Whether `file` has something to read: never read to the end, or grown since. */
  private plan(file: Listed): boolean {
    const known = this.inputs.get(file.path);
    return known === undefined || !known.complete || file.size > known.size;
  }

  /** Raw bytes of `file` already read: its offset for a plain file; a gzip file is read from its start. */
  private resumeOffset(file: Listed): number {
    return file.gzip ? 0 : (this.inputs.get(file.path)?.offset ?? 0);
  }

  /** Reads `file` from where its entry says, to the size it was listed with. Run again after a lost connection. */
  private async read(session: Session, file: Listed, out: SourceOutput): Promise<void> {
    const known = this.inputs.get(file.path);
    const cursor = newCursor(
      this.ctx.id,
      file.path,
      known?.input,
      known?.offset ?? 0,
      known?.line ?? 0,
      known?.skipping === true,
    );
    const state: PumpState = { cursor, carry: null };
    const start = cursor.offset;
    // A plain file is read from the end of its last complete line; an empty range has nothing to read.
    if (!file.gzip && start >= file.size) return this.finish(file, cursor, out, new Batch(1));
    let remote: Readable;
    try {
      remote = new RemoteRangeReader(session.sftp as SFTPWrapper, file.path, file.gzip ? 0 : start, file.size);
      await opened(remote);
    } catch (error) {
      if (!session.alive) throw error;
      if (isStatus(error, SFTP_NO_SUCH_FILE)) {
        // Gone between the listing and the read (rotated away, deleted): the next listing tells what became of it.
        this.ctx.logger.info('remote file disappeared before it was read', { file: file.path });
        return;
      }
      this.reportOnce(out, file.path, `cannot open ${file.path} on the SFTP server: ${errorMessage(error)}`, cursor);
      return;
    }
    this.reported.delete(file.path);
    let input: Readable = remote;
    if (file.gzip) {
      const gunzip = createGunzip();
      const skip = skipBytes(cursor.offset);
      pipeline(remote, gunzip, skip, () => {});
      input = skip;
    }
    const reader = new StreamReader(input);
    const buf = allocateReadBuffer(this.options.max_line_bytes);
    const batch = new Batch(this.ctx.batchMaxRecords);
    const flush = async (): Promise<void> => {
      if (batch.empty || out.stopping.aborted) return;
      await this.emit(file, cursor, false, out, batch);
    };
    try {
      await pump(state, reader, buf, batch, {
        maxLineBytes: this.options.max_line_bytes,
        // A last line without newline is emitted at the end of a finite run and of a gzip file; when following
        // a plain file it waits for the rest of it (the writer is still writing it).
        final: file.gzip || !this.options.follow,
        budget: Number.POSITIVE_INFINITY,
        stopping: out.stopping,
        idleMs: IDLE_FLUSH_MS,
        flush,
      });
    } catch (error) {
      reader.destroy();
      if (!file.gzip || !isZlibError(error)) throw error;
      // What was emitted stays emitted (gzip checks its CRC only at the end): the file is done up to here.
      const cut = (error as NodeJS.ErrnoException).code === 'Z_BUF_ERROR';
      if (!(cut && this.options.follow)) {
        out.inputError(
          `${cut ? 'gzip file ends in the middle of its data' : 'gzip data is corrupt'}: ${errorMessage(error)}; ` +
            'the lines before that point were emitted, and the file is read again only if it grows',
          { file: file.path, offset: cursor.offset, line: cursor.line },
        );
      }
      // In follow mode, a cut file is taken as one still being uploaded: it is continued when it grows.
      return this.finish(file, cursor, out, batch);
    }
    reader.destroy();
    if (out.stopping.aborted) return;
    await this.finish(file, cursor, out, batch);
  }

  /** Emits the rest of the batch with the file marked read to the size it was listed with. */
  private async finish(file: Listed, cursor: LineCursor, out: SourceOutput, batch: Batch): Promise<void> {
    this.filesRead.inc();
    await this.emit(file, cursor, true, out, batch);
    if (!this.options.follow && file.gzip) {
      this.doneBytes += file.size;
      out.progress(this.doneBytes, this.totalBytes);
    }
  }

  private async emit(file: Listed, cursor: LineCursor, complete: boolean, out: SourceOutput, batch: Batch) {
    const { records, bytes, truncated } = batch.take();
    if (truncated > 0) this.truncatedLines.inc(truncated);
    const known = this.inputs.get(file.path);
    const entry: RemoteInput = {
      path: file.path,
      size: file.size,
      mtime_ms: file.mtimeMs,
      offset: cursor.offset,
      line: cursor.line,
      ...(cursor.skipping ? { skipping: true as const } : {}),
      ...(complete ? { complete: true as const } : {}),
      ...(known?.fingerprint !== undefined
        ? { fingerprint: known.fingerprint, fingerprint_bytes: known.fingerprint_bytes ?? 0 }
        : {}),
      ...(known?.input !== undefined ? { input: known.input } : {}),
    };
    this.inputs.set(file.path, entry);
    await out.emit(records, this.position(), bytes);
    if (!this.options.follow && !file.gzip) {
      this.doneBytes += bytes;
      out.progress(this.doneBytes, this.totalBytes);
    }
  }

  private position(): RemoteInputsPosition {
    return { inputs: [...this.inputs.values()], generations: Object.fromEntries(this.generations) };
  }

  private reportOnce(out: SourceOutput, path: string, reason: string, cursor: LineCursor): void {
    if (this.reported.has(path)) return;
    this.reported.add(path);
    out.inputError(reason, { file: path, offset: cursor.offset, line: cursor.line });
  }

  /** Bytes listed and not yet read: plain files' tails, gzip files not read to their end. */
  private lagBytes(): number {
    let lag = 0;
    for (const file of this.listed) {
      const known = this.inputs.get(file.path);
      if (file.gzip) lag += known?.complete && known.size === file.size ? 0 : file.size;
      else lag += Math.max(0, file.size - (known?.offset ?? 0));
    }
    return lag;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const session = this.session;
    this.session = undefined;
    await session?.close();
  }
}

/**
 * The entry of content read under another name, for its new one: where its reading was, and its identity. Renamed
 * from plain to gzip or back (compressed by the rotation), sizes no longer compare: it is read again, skipping
 * what was read (a gzip file is decompressed from its start).
 */
function movedTo(former: RemoteInput, file: Listed): RemoteInput {
  const sameKind = former.path.endsWith('.gz') === file.gzip;
  const { complete: _complete, ...rest } = former;
  return sameKind ? { ...former, path: file.path } : { ...rest, path: file.path, size: 0, mtime_ms: 0 };
}

/** Resolves once the remote file is open (its handle obtained), rejects with the open's error. */
function opened(stream: Readable): Promise<void> {
  return new Promise((resolve, reject) => {
    const onOpen = (): void => {
      stream.off('error', onError);
      resolve();
    };
    const onError = (error: Error): void => {
      stream.off('open', onOpen);
      reject(error);
    };
    stream.once('open', onOpen);
    stream.once('error', onError);
  });
}

/** Drops the first `count` bytes of a stream: the part of a decompressed file that was read before. */
function skipBytes(count: number): Transform {
  let left = count;
  return new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      if (left >= chunk.length) {
        left -= chunk.length;
        return done();
      }
      const rest = left > 0 ? chunk.subarray(left) : chunk;
      left = 0;
      done(null, rest);
    },
  });
}

function isStatus(error: unknown, ...codes: number[]): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' && codes.includes(code);
}

function isZlibError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('Z_');
}
