/**
 * The file sink. Batches are encoded to text and gathered in memory (acknowledging a batch only promises it
 * will be durable at the next checkpoint); the text goes to disk in one write once about 1 MiB has gathered,
 * and at every checkpoint, flush, roll and close. With gzip, each such write is one gzip member, so every
 * checkpoint falls on a member boundary, and each file is begun with an empty member, so that one holding no
 * records yet (a roll by the run's last batch, a run without input) is valid gzip too, not an empty file that
 * gunzip and zcat reject. `prepareCommit` fsyncs and reports the file and its length;
 * `restore` truncates to that length, which is what makes the output exactly-once across crashes.
 *
 * It can `cut`: the text gathered up to the cut is queued for the disk ahead of anything written after it,
 * and the state recorded is the file as it stands once that text is written. Writes of the next snapshot
 * go on meanwhile; every disk operation runs in one queue, in order.
 */
import { mkdir, open, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { gzip, gzipSync } from 'node:zlib';
import type { OperatorContext, Sink, SinkWriteContext } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import { CsvEncoder, type Encoder, JsonlEncoder, schemaColumns } from '../../shared/record-encoders.ts';
import { rolledName, rolledSequence } from './naming.ts';
import type { FileSinkOptions } from './schema.ts';

const gzipAsync = promisify(gzip);
/** A gzip member of no data (20 bytes): what a gzip file holds before its first record. */
const EMPTY_GZIP_MEMBER = gzipSync(Buffer.alloc(0));

/** Gathered text is written out past this many bytes: few large writes, bounded memory. */
export const WRITE_THRESHOLD_BYTES = 1 << 20;
/** Rolled file names kept in the state, newest last (older ones are known from their sequence numbers). */
const ROLLED_IN_STATE = 100;

/** What a checkpoint records about the output, and what a rerun restores. */
export interface FileSinkState {
  /** The file being written (absolute). */
  readonly file: string;
  /** Bytes of `file` covered by the checkpoint. */
  readonly bytes: number;
  /** Sequence number of `file`; it is rolled under this number, and later numbers are newer files. */
  readonly sequence: number;
  /** When `file` was started, in epoch milliseconds (for interval rolling). */
  readonly started_at: number;
  /** The most recent rolled files, complete at the checkpoint. */
  readonly rolled: readonly string[];
  /** CSV columns in use, so that a rerun writes the same ones. */
  readonly fields?: readonly string[];
}

/** Knobs for tests and benchmarks; the defaults are what pipelines get. */
export interface FileSinkTuning {
  readonly writeThresholdBytes?: number;
}

export function createFileSink(options: FileSinkOptions, ctx: OperatorContext, tuning: FileSinkTuning = {}): Sink {
  return new FileSink(options, ctx, tuning.writeThresholdBytes ?? WRITE_THRESHOLD_BYTES);
}

class FileSink implements Sink {
  private readonly options: FileSinkOptions;
  private readonly ctx: OperatorContext;
  private readonly path: string;
  private readonly encoder: Encoder;
  private readonly csv: CsvEncoder | undefined;
  private readonly writeThreshold: number;
  private handle: FileHandle | undefined;
  /** Bytes of the current file on disk. */
  private bytes = 0;
  private sequence = 1;
  private startedAt = Date.now();
  private rolled: string[] = [];
  /** Encoded text not yet written, and its UTF-8 length. */
  private pending = '';
  private pendingBytes = 0;
  private needsHeader = false;
  /** Files were renamed or removed since the directory was last synced. */
  private dirChanged = false;
  private closed = false;
  /** Disk operations, one after the other: writes of the next snapshot never pass the cut's. */
  private io: Promise<unknown> = Promise.resolve();
  /** The state at the last cut, once its text is on disk. */
  private atCut: Promise<FileSinkState> | undefined;

  constructor(options: FileSinkOptions, ctx: OperatorContext, writeThreshold: number) {
    this.options = options;
    this.writeThreshold = writeThreshold;
    this.ctx = ctx;
    this.path = resolve(ctx.baseDir, options.path);
    if (options.format === 'csv') {
      this.csv = new CsvEncoder(options.fields ?? schemaColumns(ctx.inputSchema));
      this.encoder = this.csv;
    } else {
      this.encoder = new JsonlEncoder();
    }
  }

  async plan(): Promise<string[]> {
    const gzip = this.options.compression === 'gzip' ? ', gzip' : '';
    return [`write ${this.options.format}${gzip} to ${this.path}`];
  }

  async open(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
  }

  async restore(state: unknown): Promise<void> {
    if (this.closed) throw new Error('file sink restored after close');
    await this.handle?.close();
    this.handle = undefined;
    this.pending = '';
    this.pendingBytes = 0;
    const saved = parseState(state);
    if (saved && saved.file !== this.path) {
      this.ctx.logger.warn('the checkpoint is for another file; starting this one anew', {
        checkpointed: saved.file,
        file: this.path,
      });
    }
    // Without a checkpoint for this file, it is started (emptied, unless `append`) only once the run is under way,
    // at its first write or checkpoint: a run that fails to start (another stage's missing file) leaves it as is.
    if (saved?.file === this.path) await this.resume(saved);
  }

  async write(records: EtlRecord[], ctx: SinkWriteContext): Promise<void> {
    if (this.closed) throw new Error('file sink written after close');
    // Through the queue, after a cut's own start if one is under way: the file is started once.
    if (!this.handle) await this.queue(() => this.started());
    const text = this.encoder.encode(records, ctx);
    if (text.length === 0) return;
    const header = this.needsHeader ? this.encoder.header() : '';
    this.needsHeader = false;
    this.gather(header + text);
    try {
      if (this.pendingBytes >= this.writeThreshold) await this.queue(() => this.writePending());
    } catch (error) {
      // All or nothing: the batch leaves no trace (a retry passes it again); what was gathered before it stays.
      const batch = header.length + text.length;
      this.pending = this.pending.slice(0, this.pending.length - batch);
      this.pendingBytes = Buffer.byteLength(this.pending);
      this.needsHeader = header.length > 0;
      throw error;
    }
    if (this.rollDue()) await this.queue(() => this.roll());
  }

  cut(): void {
    const text = this.pending;
    this.pending = '';
    this.pendingBytes = 0;
    this.atCut = this.queue(async () => {
      await this.started();
      await this.writeText(text);
      return this.state();
    });
  }

  async prepareCommit(): Promise<FileSinkState> {
    const cut = this.atCut;
    this.atCut = undefined;
    if (!cut) {
      await this.queue(async () => {
        await this.started();
        await this.sync();
      });
      return this.state();
    }
    const state = await cut;
    // Durable by now: the bytes at the cut (and any written after them, which a rerun truncates away).
    await this.queue(() => this.syncWritten());
    return state;
  }

  async flush(): Promise<void> {
    await this.queue(() => this.sync());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.io.catch(() => {});
    const handle = this.handle;
    if (!handle) return;
    try {
      await this.writePending();
    } finally {
      this.handle = undefined;
      await handle.close();
    }
  }

  private queue<T>(operation: () => Promise<T>): Promise<T> {
    const next = this.io.then(operation);
    this.io = next.catch(() => {});
    return next;
  }

  private state(): FileSinkState {
    return {
      file: this.path,
      bytes: this.bytes,
      sequence: this.sequence,
      started_at: this.startedAt,
      rolled: [...this.rolled],
      ...(this.csv?.fields ? { fields: this.csv.fields } : {}),
    };
  }

  // ------------------------------------------------------------------------------------------------

  /** The file open for writing: resumed at `restore`, else started now. */
  private async started(): Promise<void> {
    if (!this.handle) await this.start();
  }

  /**
   * A run without a checkpoint: the sources start from the beginning, so the output does too. Without
   * `append`, the file and the files rolled from it are written anew (a run killed before its first
   * checkpoint may have rolled some); with `append`, everything is kept and numbering goes on after it.
   */
  private async start(): Promise<void> {
    const dir = dirname(this.path);
    let highest = 0;
    let removed = 0;
    for (const name of await readdir(dir)) {
      const sequence = rolledSequence(this.path, name);
      if (sequence === undefined) continue;
      if (this.options.append) {
        highest = Math.max(highest, sequence);
      } else {
        await rm(join(dir, name));
        removed++;
      }
    }
    if (removed > 0) {
      this.dirChanged = true;
      this.ctx.logger.info('no checkpoint: removed files rolled by an earlier run', { file: this.path, removed });
    }
    this.sequence = highest + 1;
    this.startedAt = Date.now();
    this.rolled = [];
    this.handle = await open(this.path, this.options.append ? 'a' : 'w');
    this.bytes = (await this.handle.stat()).size;
    await this.beginGzip();
    this.needsHeader = this.holdsNoRecords();
  }

  private async resume(saved: FileSinkState): Promise<void> {
    this.sequence = saved.sequence;
    this.startedAt = saved.started_at;
    this.rolled = [...saved.rolled];
    if (saved.fields && !this.options.fields && this.csv) this.csv.restoreFields(saved.fields);
    await this.undoRollsAfter(saved.sequence);
    this.handle = await open(this.path, 'a');
    const size = (await this.handle.stat()).size;
    if (size < saved.bytes) {
      throw new Error(
        `${this.path} holds ${size} bytes but the checkpoint covers ${saved.bytes}: it was truncated or replaced`,
      );
    }
    if (size > saved.bytes) {
      await this.handle.truncate(saved.bytes);
      this.ctx.logger.info('removed output written after the last checkpoint', {
        file: this.path,
        bytes: size - saved.bytes,
      });
    }
    this.bytes = saved.bytes;
    // A checkpoint taken before gzip files were begun with an empty member may cover none of the file.
    await this.beginGzip();
    this.needsHeader = this.holdsNoRecords();
  }

  /**
   * A roll after the checkpoint renamed the checkpointed file and began newer ones: put the checkpointed
   * file back at `path` and remove the newer ones. Files of earlier runs have lower numbers and stay.
   */
  private async undoRollsAfter(sequence: number): Promise<void> {
    const dir = dirname(this.path);
    for (const name of await readdir(dir)) {
      const n = rolledSequence(this.path, name);
      if (n === undefined || n < sequence) continue;
      if (n === sequence) await rename(join(dir, name), this.path);
      else await rm(join(dir, name));
      this.dirChanged = true;
    }
  }

  private gather(text: string): void {
    this.pending += text;
    this.pendingBytes += Buffer.byteLength(text);
  }

  private async writePending(): Promise<void> {
    if (this.pendingBytes === 0 || !this.handle) return;
    const text = this.pending;
    this.pending = '';
    this.pendingBytes = 0;
    try {
      await this.writeText(text);
    } catch (error) {
      // Still to be written, ahead of anything gathered since: a full disk loses no acknowledged record.
      this.pending = text + this.pending;
      this.pendingBytes = Buffer.byteLength(this.pending);
      throw error;
    }
  }

  /** Appends `text` whole (one gzip member with gzip), or not at all. */
  private async writeText(text: string): Promise<void> {
    if (text.length === 0 || !this.handle) return;
    const data = Buffer.from(text, 'utf8');
    await this.append(this.options.compression === 'gzip' ? await gzipAsync(data) : data);
  }

  /** Appends `data` whole, or not at all: a write cut short (a full disk) is truncated away. */
  private async append(data: Buffer): Promise<void> {
    const handle = this.handle;
    if (!handle) return;
    let offset = 0;
    try {
      while (offset < data.length) {
        // At an explicit position: after a truncation the descriptor's own offset would leave a hole.
        const { bytesWritten } = await handle.write(data, offset, data.length - offset, this.bytes + offset);
        offset += bytesWritten;
      }
    } catch (error) {
      if (offset > 0) await handle.truncate(this.bytes);
      throw error;
    }
    this.bytes += data.length;
  }

  private async sync(): Promise<void> {
    await this.writePending();
    await this.syncWritten();
  }

  /** fsync of what is on disk (not what is gathered), and of the directory after renames. */
  private async syncWritten(): Promise<void> {
    await this.handle?.sync();
    if (this.dirChanged) {
      // Renames and removals are durable only once the directory is synced.
      const dir = await open(dirname(this.path), 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
      this.dirChanged = false;
    }
  }

  private rollDue(): boolean {
    const rolling = this.options.rolling;
    if (!rolling) return false;
    // With gzip the compressed size is known once written, so only written bytes count.
    const size = this.bytes + (this.options.compression === 'gzip' ? 0 : this.pendingBytes);
    if (rolling.max_bytes !== undefined && size >= rolling.max_bytes) return true;
    return rolling.interval_seconds !== undefined && Date.now() - this.startedAt >= rolling.interval_seconds * 1000;
  }

  private async roll(): Promise<void> {
    await this.writePending();
    const handle = this.handle;
    if (!handle) return;
    this.handle = undefined;
    await handle.sync();
    await handle.close();
    const name = rolledName(this.path, this.sequence, new Date());
    await rename(this.path, join(dirname(this.path), name));
    this.dirChanged = true;
    this.rolled.push(name);
    if (this.rolled.length > ROLLED_IN_STATE) this.rolled.splice(0, this.rolled.length - ROLLED_IN_STATE);
    this.ctx.logger.info('rolled output file', { file: name, bytes: this.bytes });
    this.sequence++;
    this.bytes = 0;
    this.startedAt = Date.now();
    this.needsHeader = true;
    this.handle = await open(this.path, 'w');
    await this.beginGzip();
  }

  /**
   * An empty gzip file is not valid gzip (`unexpected end of file`): a gzip file with nothing in it yet is
   * given an empty member as soon as it is opened, before any checkpoint can record it. A crash between the
   * two leaves an empty file no checkpoint covers: a roll's is undone, a start's is started again.
   */
  private async beginGzip(): Promise<void> {
    if (this.options.compression === 'gzip' && this.bytes === 0) await this.append(EMPTY_GZIP_MEMBER);
  }

  /** The file is empty, or (gzip) holds only the empty member: a CSV header is still to be written. */
  private holdsNoRecords(): boolean {
    return this.bytes === 0 || (this.options.compression === 'gzip' && this.bytes === EMPTY_GZIP_MEMBER.length);
  }
}

function parseState(state: unknown): FileSinkState | undefined {
  if (state === undefined || state === null) return undefined;
  const s = state as Partial<FileSinkState>;
  if (
    typeof s.file !== 'string' ||
    typeof s.bytes !== 'number' ||
    typeof s.sequence !== 'number' ||
    typeof s.started_at !== 'number' ||
    !Array.isArray(s.rolled)
  ) {
    throw new Error(`unreadable file sink checkpoint state: ${JSON.stringify(state)}`);
  }
  return s as FileSinkState;
}
