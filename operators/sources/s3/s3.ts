/**
 * The `s3` source: lists a bucket under a prefix, reads each object not done yet in key order, splits it into
 * lines with the file source's splitter, and checkpoints a `Ledger` (position.ts) with every batch. A rerun
 * skips the keys done and goes on inside the object it was reading: a plain object from its byte offset (a
 * ranged GET), a gzip one by decompressing it again up to that offset.
 */
import { once } from 'node:events';
import { pipeline, Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { GetObjectCommand, paginateListObjectsV2, type S3Client } from '@aws-sdk/client-s3';
import { errorMessage, EtlError, isRetriable } from '../../../engine/errors.ts';
import type { Source, SourceContext, SourceOutput } from '../../../engine/operator.ts';
import { backoffDelay, sleep } from '../../../engine/retry.ts';
import { createS3Client, s3Status } from '../../shared/s3-client.ts';
import { type ChunkReader, StreamReader } from '../../shared/line-reader/chunks.ts';
import { allocateReadBuffer, Batch, type LineCursor, newCursor } from '../../shared/line-reader/lines.ts';
import { IDLE_FLUSH_MS, type PumpState, pump } from '../../shared/line-reader/pump.ts';
import { compareKeys, Ledger, type ListedObject } from './position.ts';
import type { S3SourceOptions } from './schema.ts';

const GZIP_MAGIC_0 = 0x1f;
const GZIP_MAGIC_1 = 0x8b;

/** The object being read and how far. */
interface Reading {
  readonly object: ListedObject;
  readonly cursor: LineCursor;
  gzip: boolean | undefined;
}

/** For tests: keys per listing page (S3's most, 1000, by default). */
export interface S3SourceTuning {
  readonly pageSize?: number;
}

export function createS3Source(options: S3SourceOptions, ctx: SourceContext, tuning: S3SourceTuning = {}): Source {
  return new S3Source(options, ctx, createS3Client(options), tuning.pageSize ?? 1000);
}

class S3Source implements Source {
  private readonly options: S3SourceOptions;
  private readonly ctx: SourceContext;
  private readonly client: S3Client;
  private readonly pageSize: number;
  private readonly ledger: Ledger;
  private readonly batch: Batch;
  private reading: Reading | undefined;
  /** Bytes of listed objects not read yet, for `etl_source_lag_bytes`. */
  private pendingBytes = 0;
  private body: Readable | undefined;
  private closed = false;
  private readonly objectsRead: { inc(value?: number): void };
  private readonly truncatedLines: { inc(value?: number): void };

  constructor(options: S3SourceOptions, ctx: SourceContext, client: S3Client, pageSize: number) {
    this.options = options;
    this.pageSize = pageSize;
    this.ctx = ctx;
    this.client = client;
    const prefix = options.prefix;
    const restored = Ledger.restore(options.bucket, prefix, ctx.restoredPosition);
    if (restored === undefined && ctx.restoredPosition !== undefined) {
      ctx.logger.warn('the checkpoint is of another bucket or prefix: reading from the first key', {
        bucket: options.bucket,
        prefix,
      });
    }
    this.ledger = restored ?? new Ledger(options.bucket, prefix);
    this.batch = new Batch(ctx.batchMaxRecords);
    this.objectsRead = ctx.metrics.counter('etl_s3_objects_read_total', 'Objects the s3 source read to their end.');
    this.truncatedLines = ctx.metrics.counter(
      'etl_source_truncated_lines_total',
      'Lines longer than max_line_bytes, cut and marked truncated',
    );
    ctx.signals?.sourceState(() => ({
      lagBytes: Math.max(0, this.pendingBytes - (this.reading?.gzip === false ? this.reading.cursor.offset : 0)),
    }));
  }

  async run(out: SourceOutput): Promise<void> {
    const lateMs = this.options.late_arrival_seconds * 1000;
    const buf = allocateReadBuffer(this.options.max_line_bytes);
    for (;;) {
      const listed = await this.list(out.stopping);
      const pending = listed.filter((object) => !this.ledger.isDone(object.key));
      const partialKey = this.ledger.partial?.key;
      // An object read in part and deleted since: nothing is left to resume.
      if (partialKey !== undefined && !pending.some((object) => object.key === partialKey)) this.ledger.partial = null;
      const totalBytes = pending.reduce((sum, object) => sum + object.size, 0);
      this.pendingBytes = totalBytes;
      let doneBytes = 0;
      for (const object of pending) {
        if (out.stopping.aborted) break;
        const finished = await this.readObject(object, buf, out);
        if (!finished) break;
        this.ledger.complete(object.key);
        this.ledger.advance(listed, Date.now() - lateMs);
        this.objectsRead.inc();
        doneBytes += object.size;
        this.pendingBytes -= object.size;
        if (!this.options.follow) out.progress(doneBytes, totalBytes);
      }
      this.ledger.advance(listed, Date.now() - lateMs);
      // What is left of the batch, or only the position (keys done, the watermark moved).
      await this.flush(out, true);
      if (!this.options.follow || out.stopping.aborted) return;
      try {
        await sleep(this.options.poll_interval_seconds * 1000, out.stopping);
      } catch {
        return;
      }
    }
  }

  /** Every object under the prefix after the watermark, in key order. */
  private async list(stopping: AbortSignal): Promise<ListedObject[]> {
    const listed: ListedObject[] = [];
    const pages = paginateListObjectsV2(
      { client: this.client, pageSize: this.pageSize },
      {
        Bucket: this.options.bucket,
        Prefix: this.options.prefix === '' ? undefined : this.options.prefix,
        StartAfter: this.ledger.watermark ?? undefined,
      },
    );
    try {
      for await (const page of pages) {
        for (const item of page.Contents ?? []) {
          if (item.Key === undefined) continue;
          listed.push({
            key: item.Key,
            etag: item.ETag ?? '',
            size: item.Size ?? 0,
            lastModified: item.LastModified?.getTime() ?? 0,
          });
        }
        if (stopping.aborted) break;
      }
    } catch (error) {
      throw new EtlError(
        'ETL_RUN_SOURCE_FAILED',
        `cannot list s3://${this.options.bucket}/${this.options.prefix}: ${errorMessage(error)}`,
        {
          cause: error,
        },
      );
    }
    // S3 lists in key order already; S3-compatible stores are not all so careful.
    return listed.sort((a, b) => compareKeys(a.key, b.key));
  }

  /**
   * Reads one object's lines into the batch from where the ledger says it stopped, flushing full batches.
   * False when the run is stopping before the object's end. A transfer that fails is resumed from the last line
   * taken; a gzip stream found corrupt or cut is reported and the object counted as read (the lines before the
   * damage were emitted).
   */
  private async readObject(object: ListedObject, buf: Buffer, out: SourceOutput): Promise<boolean> {
    const file = `s3://${this.options.bucket}/${object.key}`;
    const partial = this.ledger.partial;
    let resume = partial !== null && partial.key === object.key ? partial : undefined;
    if (resume !== undefined && resume.etag !== object.etag) {
      this.ctx.logger.warn('object replaced since the checkpoint (another ETag): reading it from its start', { file });
      resume = undefined;
    }
    const cursor = newCursor(
      this.ctx.id,
      file,
      undefined,
      resume?.offset ?? 0,
      resume?.line ?? 0,
      resume?.skipping ?? false,
    );
    const reading: Reading = { object, cursor, gzip: resume?.gzip ?? this.declaredGzip(object.key) };
    this.reading = reading;
    const state: PumpState = { cursor, carry: null };
    const flush = () => this.flush(out, false);
    try {
      for (let attempt = 1; ; attempt++) {
        let reader: ChunkReader | undefined;
        try {
          reader = await this.open(reading, out.stopping);
          if (reader === undefined) return true;
          const result = await pump(state, reader, buf, this.batch, {
            maxLineBytes: this.options.max_line_bytes,
            final: true,
            budget: Number.POSITIVE_INFINITY,
            stopping: out.stopping,
            idleMs: IDLE_FLUSH_MS,
            flush,
          });
          return result.eof && !out.stopping.aborted;
        } catch (error) {
          if (out.stopping.aborted) return false;
          const code = (error as { code?: unknown } | null)?.code;
          if (typeof code === 'string' && code.startsWith('Z_')) {
            out.inputError(`gzip stream damaged, read up to the damage: ${errorMessage(error)}`, {
              file,
              offset: cursor.offset,
              line: cursor.line,
            });
            return true;
          }
          if (s3Status(error) === 404) {
            this.ctx.logger.warn('object deleted before it was read whole: skipped', { file });
            return true;
          }
          if (attempt >= this.options.max_attempts || !(isRetriable(error) || isTransferError(error))) {
            throw new EtlError('ETL_RUN_SOURCE_FAILED', `cannot read ${file}: ${errorMessage(error)}`, {
              cause: error,
            });
          }
          // Go on from the last line taken: the bytes after it are fetched again.
          state.carry = null;
          const delay = backoffDelay(attempt - 1, {
            max_attempts: this.options.max_attempts,
            initial_backoff_ms: 200,
            max_backoff_ms: 10_000,
          });
          this.ctx.logger.warn('object transfer failed, resuming', {
            file,
            offset: cursor.offset,
            attempt,
            error: errorMessage(error),
          });
          await sleep(delay, out.stopping).catch(() => undefined);
        } finally {
          this.destroyBody();
        }
      }
    } finally {
      this.reading = undefined;
    }
  }

  /** `compression` and the key's extension: true/false when they decide, undefined when the bytes must tell. */
  private declaredGzip(key: string): boolean | undefined {
    if (this.options.compression === 'gzip') return true;
    if (this.options.compression === 'none') return false;
    return key.endsWith('.gz') ? true : undefined;
  }

  /** A reader of the object's decompressed bytes from `cursor.offset`; undefined when nothing is left. */
  private async open(reading: Reading, stopping: AbortSignal): Promise<ChunkReader | undefined> {
    const offset = reading.cursor.offset;
    const ranged = reading.gzip === false && offset > 0;
    if (ranged && offset >= reading.object.size) return undefined;
    const response = await this.client.send(
      new GetObjectCommand({
        Bucket: this.options.bucket,
        Key: reading.object.key,
        ...(ranged ? { Range: `bytes=${offset}-` } : {}),
      }),
      { abortSignal: stopping },
    );
    const body = response.Body;
    if (!(body instanceof Readable)) throw new TypeError('the S3 client returned no Node.js stream');
    this.body = body;
    if (reading.gzip === undefined) {
      reading.gzip = response.ContentEncoding?.toLowerCase() === 'gzip' || (await startsWithGzipMagic(body));
    }
    if (!reading.gzip) return new StreamReader(body);
    const gunzip = createGunzip();
    // pipeline hands an error of either stream to the gunzip side, where the reader sees it.
    pipeline(body, gunzip, () => {});
    const reader = new StreamReader(gunzip);
    return offset > 0 ? new SkippingReader(reader, offset) : reader;
  }

  /** Sends the batch with the position after its last line; `always`: also an empty one, to move the position. */
  private async flush(out: SourceOutput, always: boolean): Promise<void> {
    if (out.stopping.aborted || (this.batch.empty && !always)) return;
    const reading = this.reading;
    if (reading !== undefined) {
      const { cursor, object } = reading;
      this.ledger.partial = {
        key: object.key,
        etag: object.etag,
        gzip: reading.gzip ?? false,
        offset: cursor.offset,
        line: cursor.line,
        skipping: cursor.skipping,
      };
    }
    const { records, bytes, truncated } = this.batch.take();
    if (truncated > 0) this.truncatedLines.inc(truncated);
    await out.emit(records, this.ledger.position(), bytes);
  }

  private destroyBody(): void {
    this.body?.destroy();
    this.body = undefined;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.destroyBody();
    this.client.destroy();
  }
}

/** Whether the stream's first bytes are gzip's magic number; what was read is put back. */
async function startsWithGzipMagic(stream: Readable): Promise<boolean> {
  for (;;) {
    const chunk = stream.read() as Buffer | null;
    if (chunk !== null) {
      stream.unshift(chunk);
      return chunk.length >= 2 && chunk[0] === GZIP_MAGIC_0 && chunk[1] === GZIP_MAGIC_1;
    }
    if (stream.readableEnded || stream.destroyed) return false;
    // 'readable' also fires at the end of the stream; `once` rejects on 'error'.
    await once(stream, 'readable');
  }
}

/** A socket that broke during a transfer: the SDK has no retry for a body being read. */
function isTransferError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ECONNRESET' || code === 'ECONNABORTED';
}

/** Drops the first `skip` bytes of a decompressed stream: how a gzip object is resumed at an offset. */
class SkippingReader implements ChunkReader {
  private readonly inner: ChunkReader;
  private skip: number;

  constructor(inner: ChunkReader, skip: number) {
    this.inner = inner;
    this.skip = skip;
  }

  get rawBytes(): number {
    return this.inner.rawBytes;
  }

  async read(buf: Buffer, offset: number, length: number, signal?: AbortSignal): Promise<number> {
    while (this.skip > 0) {
      const n = await this.inner.read(buf, offset, Math.min(length, this.skip), signal);
      if (n === 0) return 0;
      this.skip -= n;
    }
    return this.inner.read(buf, offset, length, signal);
  }
}
