/**
 * The file sink. Each batch is serialised into one buffer and written with one call; `prepareCommit`
 * fsyncs and reports `{ sequence, bytes, rolled, fields }`, and `restore` truncates to it, which is what
 * makes file output exactly-once across crashes. With gzip, every batch is its own gzip member, so any
 * batch boundary (and thus any checkpoint) leaves a valid file.
 */
import { mkdir, open, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { stringify } from 'csv-stringify/sync';
import type { OperatorContext, Sink, SinkWriteContext } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import type { FileSinkOptions } from './schema.ts';

const gzipAsync = promisify(gzip);

/** What a checkpoint records about the output, and what a rerun restores. */
export interface FileSinkState {
  /** Sequence number of the file currently at `path` (rolled files carry theirs in their name). */
  readonly sequence: number;
  /** Bytes of the current file covered by the checkpoint. */
  readonly bytes: number;
  /** When the current file was started (for interval rolling). */
  readonly startedAt: number;
  /** Names of rolled files, complete at the checkpoint. */
  readonly rolled: readonly string[];
  /** CSV columns in use. */
  readonly fields?: readonly string[];
}

export function createFileSink(options: FileSinkOptions, ctx: OperatorContext): Sink {
  return new FileSink(options, ctx);
}

class FileSink implements Sink {
  private readonly options: FileSinkOptions;
  private readonly ctx: OperatorContext;
  private readonly path: string;
  private handle: FileHandle | undefined;
  private sequence = 1;
  private bytes = 0;
  private startedAt = Date.now();
  private rolled: string[] = [];
  private fields: string[] | undefined;
  private closed = false;

  constructor(options: FileSinkOptions, ctx: OperatorContext) {
    this.options = options;
    this.ctx = ctx;
    this.path = resolve(ctx.baseDir, options.path);
    this.fields = options.fields ? [...options.fields] : undefined;
  }

  async plan(): Promise<string[]> {
    return [`write ${this.options.format} to ${this.path}${this.options.compression === 'gzip' ? ' (gzip)' : ''}`];
  }

  async open(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
  }

  async restore(state: unknown): Promise<void> {
    const saved = parseState(state);
    if (!saved) {
      // A first run: start anew unless asked to append.
      this.handle = await open(this.path, this.options.append ? 'a' : 'w');
      this.bytes = (await this.handle.stat()).size;
      return;
    }
    this.sequence = saved.sequence;
    this.startedAt = saved.startedAt;
    this.rolled = [...saved.rolled];
    if (saved.fields && !this.options.fields) this.fields = [...saved.fields];
    await this.undoRollsAfterCheckpoint(saved);
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
  }

  async write(records: EtlRecord[], ctx: SinkWriteContext): Promise<void> {
    const handle = this.handle ?? (await this.openFresh());
    let text = this.options.format === 'csv' ? this.csv(records, ctx) : jsonLines(records, ctx);
    if (text.length === 0) return;
    if (this.options.format === 'csv' && this.bytes === 0 && this.fields) text = stringify([this.fields]) + text;
    let data: Buffer = Buffer.from(text, 'utf8');
    if (this.options.compression === 'gzip') data = await gzipAsync(data);
    await writeAll(handle, data);
    this.bytes += data.length;
    await this.rollIfDue();
  }

  async prepareCommit(): Promise<FileSinkState> {
    await this.handle?.sync();
    return {
      sequence: this.sequence,
      bytes: this.bytes,
      startedAt: this.startedAt,
      rolled: [...this.rolled],
      ...(this.fields ? { fields: [...this.fields] } : {}),
    };
  }

  async flush(): Promise<void> {
    await this.handle?.sync();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
  }

  // ------------------------------------------------------------------------------------------------

  private async openFresh(): Promise<FileHandle> {
    await this.restore(undefined);
    return this.handle as FileHandle;
  }

  private csv(records: EtlRecord[], ctx: SinkWriteContext): string {
    this.fields ??= Object.keys(records[0] ?? {});
    const fields = this.fields;
    const rows: unknown[][] = [];
    for (const record of records) {
      try {
        rows.push(fields.map((field) => cell(lookup(record, field))));
      } catch (error) {
        ctx.deadLetter(record, `cannot write as CSV: ${(error as Error).message}`);
      }
    }
    return rows.length === 0 ? '' : stringify(rows);
  }

  private async rollIfDue(): Promise<void> {
    const rolling = this.options.rolling;
    if (!rolling) return;
    const bySize = rolling.max_bytes !== undefined && this.bytes >= rolling.max_bytes;
    const byTime =
      rolling.interval_seconds !== undefined && Date.now() - this.startedAt >= rolling.interval_seconds * 1000;
    if (!bySize && !byTime) return;
    await this.handle?.sync();
    await this.handle?.close();
    const name = rolledName(this.path, this.sequence, new Date());
    await rename(this.path, join(dirname(this.path), name));
    this.rolled.push(name);
    this.sequence++;
    this.bytes = 0;
    this.startedAt = Date.now();
    this.handle = await open(this.path, 'w');
  }

  /**
   * A roll after the checkpoint renamed the checkpointed file and started another: put the checkpointed
   * one back at `path` and remove files begun after the checkpoint.
   */
  private async undoRollsAfterCheckpoint(saved: FileSinkState): Promise<void> {
    const dir = dirname(this.path);
    const kept = new Set(saved.rolled);
    let checkpointed: string | undefined;
    for (const name of await readdir(dir)) {
      const sequence = rolledSequence(this.path, name);
      if (sequence === undefined || kept.has(name) || sequence < saved.sequence) continue;
      if (sequence === saved.sequence) checkpointed = name;
      else await rm(join(dir, name));
    }
    if (checkpointed) await rename(join(dir, checkpointed), this.path);
  }
}

function parseState(state: unknown): FileSinkState | undefined {
  if (state === undefined || state === null) return undefined;
  const s = state as Partial<FileSinkState>;
  if (typeof s.sequence !== 'number' || typeof s.bytes !== 'number' || !Array.isArray(s.rolled)) {
    throw new Error(`unreadable file sink checkpoint state: ${JSON.stringify(state)}`);
  }
  return { startedAt: Date.now(), ...s } as FileSinkState;
}

function jsonLines(records: EtlRecord[], ctx: SinkWriteContext): string {
  let out = '';
  for (const record of records) {
    let line: string;
    try {
      line = JSON.stringify(record);
    } catch (error) {
      ctx.deadLetter(record, `cannot write as JSON: ${(error as Error).message}`);
      continue;
    }
    out += `${line}\n`;
  }
  return out;
}

function lookup(record: EtlRecord, field: string): unknown {
  if (field in record) return record[field];
  let value: unknown = record;
  for (const part of field.split('.')) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

function cell(value: unknown): unknown {
  if (value === null || value === undefined) return '';
  if (typeof value === 'object') return JSON.stringify(value);
  if (typeof value === 'bigint') return value.toString();
  return value;
}

async function writeAll(handle: FileHandle, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset);
    offset += bytesWritten;
  }
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** `<stem>-<UTC yyyyMMddTHHmmss>-<sequence>.<ext>`: sorts by time, and the sequence ties it to the checkpoint. */
export function rolledName(path: string, sequence: number, at: Date): string {
  const { stem, ext } = splitName(path);
  const stamp = `${at.getUTCFullYear()}${pad(at.getUTCMonth() + 1)}${pad(at.getUTCDate())}T${pad(at.getUTCHours())}${pad(at.getUTCMinutes())}${pad(at.getUTCSeconds())}`;
  return `${stem}-${stamp}-${pad(sequence, 6)}${ext}`;
}

function rolledSequence(path: string, name: string): number | undefined {
  const { stem, ext } = splitName(path);
  if (!name.startsWith(`${stem}-`) || !name.endsWith(ext)) return undefined;
  const middle = name.slice(stem.length + 1, name.length - ext.length);
  const match = /^\d{8}T\d{6}-(\d{6,})$/.exec(middle);
  return match ? Number(match[1]) : undefined;
}

/** `parsed.jsonl.gz` → stem `parsed`, ext `.jsonl.gz`. */
function splitName(path: string): { stem: string; ext: string } {
  const name = basename(path);
  let ext = extname(name);
  if (ext === '.gz') ext = extname(name.slice(0, -3)) + ext;
  return { stem: name.slice(0, name.length - ext.length), ext };
}
