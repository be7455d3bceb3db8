/**
 * The `s3` sink. Records are encoded (JSON lines or CSV), grouped by the partition their time falls in, and
 * staged on the local disk, one file per partition, under `<data_dir>/s3-sink/<stage>/open/`. At a checkpoint,
 * `prepareCommit` syncs the files and records their lengths (the file sink's way: a rerun truncates them back),
 * and moves those old or large enough (all of them at the end of a run) into a folder named after the snapshot
 * id: sealed. Once the engine has recorded the snapshot, `commit` uploads each sealed file (multipart when
 * large) under a key made of the pipeline, the stage, the lineage (made on a run without a checkpoint, kept by
 * every rerun) and the snapshot id, and removes the folder. A rerun's `restore` uploads again what a crash left
 * sealed for a recorded snapshot (the same keys, the same bytes: nothing twice), takes back the open files at
 * their recorded lengths (from a folder sealed for a snapshot never recorded, if need be), and drops the rest:
 * the sources read it again.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { HeadBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { errorMessage, EtlError } from '../../../engine/errors.ts';
import type { OperatorContext, Sink, SinkWriteContext } from '../../../engine/operator.ts';
import { type EtlRecord, eventTimeOf } from '../../../engine/record.ts';
import { CsvEncoder, type Encoder, JsonlEncoder, schemaColumns } from '../../shared/record-encoders.ts';
import { createS3Client } from '../../shared/s3-client.ts';
import type { S3SinkOptions } from './schema.ts';

const gzipAsync = promisify(gzip);

/** Staged text is compressed and written out past this many bytes: few large writes, bounded memory. */
const WRITE_THRESHOLD_BYTES = 1 << 20;
const HOUR_MS = 3_600_000;
/** The staging folder of the objects still gathering records. */
const OPEN_DIR = 'open';
/** Where `restore` gathers the open files it takes back, before they become `open/` again. */
const RESTORING_DIR = 'restoring';

/** What a checkpoint records. */
export interface S3SinkState {
  /** Part of every key: tells this lineage of runs from an earlier one that started over without a checkpoint. */
  readonly lineage: string;
  readonly snapshot: number;
  /** The keys of the objects the snapshot sealed (uploaded at its commit). */
  readonly keys: readonly string[];
  /** The objects still gathering records: their staged bytes at the checkpoint. */
  readonly open: readonly OpenObject[];
  /** CSV columns in use, so that a rerun writes the same ones. */
  readonly fields?: readonly string[];
}

export interface OpenObject {
  readonly partition: string;
  readonly bytes: number;
  /** When its first record was staged, epoch ms. */
  readonly started_at: number;
}

/** One partition's staged file. */
interface Staged {
  readonly partition: string;
  startedAt: number;
  handle: FileHandle | undefined;
  /** Bytes on disk. */
  bytes: number;
  /** Encoded text not yet on disk, and its UTF-8 length. */
  pending: string;
  pendingBytes: number;
}

export function createS3Sink(options: S3SinkOptions, ctx: OperatorContext): Sink {
  return new S3Sink(options, ctx);
}

class S3Sink implements Sink {
  private readonly options: S3SinkOptions;
  private readonly ctx: OperatorContext;
  private readonly encoder: Encoder;
  private readonly csv: CsvEncoder | undefined;
  private readonly stagingDir: string;
  private readonly extension: string;
  private client: S3Client | undefined;
  private lineage = '';
  private readonly staged = new Map<string, Staged>();
  /** Partition names by hour since the epoch: one date formatting per hour of data, not per record. */
  private readonly partitions = new Map<number, string>();
  private readonly uploadedObjects: { inc(value?: number): void };
  private readonly uploadedBytes: { inc(value?: number): void };
  private closed = false;
  /** Set by `flush`: the run's last checkpoint seals every open object. */
  private sealAll = false;
  /** Asks for a checkpoint when an object is due while nothing is written (checkpoints are skipped then). */
  private rollTimer: NodeJS.Timeout | undefined;

  constructor(options: S3SinkOptions, ctx: OperatorContext) {
    this.options = options;
    this.ctx = ctx;
    if (options.format === 'csv') {
      this.csv = new CsvEncoder(options.fields ?? schemaColumns(ctx.inputSchema));
      this.encoder = this.csv;
    } else this.encoder = new JsonlEncoder();
    this.stagingDir = join(ctx.dataDir, 's3-sink', ctx.id);
    this.extension = `${options.format}${options.compression === 'gzip' ? '.gz' : ''}`;
    this.uploadedObjects = ctx.metrics.counter('etl_s3_uploaded_objects_total', 'Objects the s3 sink uploaded.');
    this.uploadedBytes = ctx.metrics.counter('etl_s3_uploaded_bytes_total', 'Bytes the s3 sink uploaded.');
  }

  async open(): Promise<void> {
    this.client = createS3Client(this.options);
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.options.bucket }), { abortSignal: this.ctx.signal });
    } catch (error) {
      throw new EtlError('ETL_RUN_SINK_FAILED', `cannot reach bucket ${this.options.bucket}: ${describe(error)}`, {
        cause: error,
      });
    }
    await mkdir(this.stagingDir, { recursive: true });
    const rollMs = this.options.roll_interval_seconds * 1000;
    if (rollMs > 0) {
      this.rollTimer = setInterval(() => this.requestDueCheckpoint(rollMs), Math.max(1000, rollMs / 4));
      this.rollTimer.unref();
    }
  }

  private requestDueCheckpoint(rollMs: number): void {
    const now = Date.now();
    for (const staged of this.staged.values()) {
      if (now - staged.startedAt >= rollMs) {
        this.ctx.requestCheckpoint();
        return;
      }
    }
  }

  async restore(state: unknown, snapshotId: number | undefined): Promise<void> {
    const saved = isState(state) ? state : undefined;
    this.lineage = saved?.lineage ?? randomBytes(4).toString('hex');
    if (saved?.fields && !this.options.fields && this.csv) this.csv.restoreFields(saved.fields);
    const recorded = saved !== undefined && snapshotId !== undefined ? snapshotId : undefined;
    const unrecorded: number[] = [];
    for (const entry of await readdir(this.stagingDir)) {
      const id = Number(entry);
      if (!Number.isSafeInteger(id) || String(id) !== entry) continue;
      if (recorded !== undefined && id <= recorded) {
        // Recorded, and its upload did not finish: upload it (again) under the same keys.
        this.ctx.logger.info('uploading what a previous run sealed for a recorded checkpoint', { snapshot: id });
        await this.upload(id);
      } else unrecorded.push(id);
    }
    // The files open at the checkpoint: still in open/, or sealed since by a snapshot never recorded (the
    // first such folder holding the partition; open/ then holds a newer file of it, started after the seal).
    const wanted = new Map((saved?.open ?? []).map((object) => [object.partition, object]));
    const found = new Map<string, string>();
    for (const folder of [...unrecorded.sort((a, b) => a - b).map(String), OPEN_DIR]) {
      let names: string[] = [];
      try {
        names = await readdir(join(this.stagingDir, folder));
      } catch {
        continue;
      }
      for (const name of names) {
        const partition = partitionOfStaged(name);
        if (wanted.has(partition) && !found.has(partition)) found.set(partition, join(this.stagingDir, folder, name));
      }
    }
    const restoring = join(this.stagingDir, RESTORING_DIR);
    await rm(restoring, { recursive: true, force: true });
    await mkdir(restoring);
    for (const [partition, path] of found) await rename(path, join(restoring, stagedName(partition)));
    for (const entry of await readdir(this.stagingDir)) {
      if (entry !== RESTORING_DIR) await rm(join(this.stagingDir, entry), { recursive: true, force: true });
    }
    await rename(restoring, join(this.stagingDir, OPEN_DIR));
    for (const [partition, object] of wanted) {
      if (!found.has(partition)) {
        throw new EtlError(
          'ETL_STATE_MISMATCH',
          `the checkpoint holds ${object.bytes} staged bytes of partition ${partition} that ${this.stagingDir} no ` +
            'longer has (was the data directory changed?)',
        );
      }
      const handle = await open(join(this.stagingDir, OPEN_DIR, stagedName(partition)), 'r+');
      await handle.truncate(object.bytes);
      this.staged.set(partition, {
        partition,
        startedAt: object.started_at,
        handle,
        bytes: object.bytes,
        pending: '',
        pendingBytes: 0,
      });
    }
    await syncDir(this.stagingDir);
  }

  async write(records: EtlRecord[], ctx: SinkWriteContext): Promise<void> {
    const groups = new Map<string, EtlRecord[]>();
    const field = this.options.time_field;
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as EtlRecord;
      const time = eventTimeOf(record[field]);
      if (Number.isNaN(time)) {
        ctx.deadLetter(record, `no time in field \`${field}\` to partition by`);
        continue;
      }
      const partition = this.partitionOf(time);
      const group = groups.get(partition);
      if (group === undefined) groups.set(partition, [record]);
      else group.push(record);
    }
    // Encode every group before anything changes, then write what is due; a failure leaves no trace.
    const texts: Array<{ staged: Staged; text: string }> = [];
    for (const [partition, group] of groups) {
      const text = this.encoder.encode(group, ctx);
      if (text === '') continue;
      const staged = this.staged.get(partition) ?? newStaged(partition, Date.now());
      const header = staged.bytes === 0 && staged.pending === '' ? this.encoder.header() : '';
      texts.push({ staged, text: header + text });
    }
    const due = texts.filter(
      ({ staged, text }) => staged.pendingBytes + Buffer.byteLength(text) >= WRITE_THRESHOLD_BYTES,
    );
    const before = due.map(({ staged }) => staged.bytes);
    try {
      for (const { staged, text } of due) await this.writeOut(staged, staged.pending + text);
    } catch (error) {
      await Promise.all(
        due.map(({ staged }, i) => staged.handle?.truncate(before[i]).then(() => (staged.bytes = before[i] as number))),
      );
      throw error;
    }
    for (const entry of texts) {
      const { staged, text } = entry;
      this.staged.set(staged.partition, staged);
      if (due.includes(entry)) {
        staged.pending = '';
        staged.pendingBytes = 0;
      } else {
        staged.pending += text;
        staged.pendingBytes += Buffer.byteLength(text);
      }
    }
  }

  async prepareCommit(snapshot: { readonly id: number }): Promise<S3SinkState> {
    const now = Date.now();
    const rollMs = this.options.roll_interval_seconds * 1000;
    const rollBytes = this.options.roll_max_mib * 1024 * 1024;
    const sealed: Staged[] = [];
    const open: OpenObject[] = [];
    for (const staged of this.staged.values()) {
      if (staged.pending !== '') await this.writeOut(staged, staged.pending);
      staged.pending = '';
      staged.pendingBytes = 0;
      await staged.handle?.sync();
      if (this.sealAll || now - staged.startedAt >= rollMs || staged.bytes >= rollBytes) sealed.push(staged);
      else open.push({ partition: staged.partition, bytes: staged.bytes, started_at: staged.startedAt });
    }
    if (sealed.length > 0) {
      const target = join(this.stagingDir, String(snapshot.id));
      await rm(target, { recursive: true, force: true });
      await mkdir(target);
      for (const staged of sealed) {
        await staged.handle?.close();
        staged.handle = undefined;
        const name = stagedName(staged.partition);
        await rename(join(this.stagingDir, OPEN_DIR, name), join(target, name));
        this.staged.delete(staged.partition);
      }
      await syncDir(target);
      await syncDir(join(this.stagingDir, OPEN_DIR));
      await syncDir(this.stagingDir);
    }
    return {
      lineage: this.lineage,
      snapshot: snapshot.id,
      keys: sealed.map((staged) => this.keyOf(staged.partition, snapshot.id)),
      open,
      ...(this.csv?.fields ? { fields: this.csv.fields } : {}),
    };
  }

  /**
   * The run's last batch is in: its last checkpoint uploads every object, however young; asked for, since
   * checkpoints are skipped when nothing was written since the previous one, which left these objects open.
   */
  async flush(): Promise<void> {
    this.sealAll = true;
    if (this.staged.size > 0) this.ctx.requestCheckpoint();
  }

  async commit(snapshot: { readonly id: number }): Promise<void> {
    await this.upload(snapshot.id);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.rollTimer);
    for (const staged of this.staged.values()) await staged.handle?.close().catch(() => undefined);
    this.client?.destroy();
  }

  /** `dt=YYYY-MM-DD/hour=HH` (or `dt=YYYY-MM-DD`) of a time in epoch ms, UTC. */
  private partitionOf(time: number): string {
    const hour = Math.floor(time / HOUR_MS);
    let name = this.partitions.get(hour);
    if (name === undefined) {
      const iso = new Date(hour * HOUR_MS).toISOString();
      name =
        this.options.partition === 'day'
          ? `dt=${iso.slice(0, 10)}`
          : `dt=${iso.slice(0, 10)}/hour=${iso.slice(11, 13)}`;
      if (this.partitions.size > 10_000) this.partitions.clear();
      this.partitions.set(hour, name);
    }
    return name;
  }

  private keyOf(partition: string, snapshotId: number): string {
    const name = `${this.ctx.pipeline}-${this.ctx.id}-${this.lineage}-${String(snapshotId).padStart(10, '0')}`;
    return `${this.options.prefix}${partition}/${name}.${this.extension}`;
  }

  /** Compresses `text` (one gzip member) and appends it to the partition's staged file. */
  private async writeOut(staged: Staged, text: string): Promise<void> {
    const bytes = this.options.compression === 'gzip' ? await gzipAsync(text) : Buffer.from(text);
    if (staged.handle === undefined) {
      await mkdir(join(this.stagingDir, OPEN_DIR), { recursive: true });
      staged.handle = await open(join(this.stagingDir, OPEN_DIR, stagedName(staged.partition)), 'w');
    }
    await staged.handle.write(bytes, 0, bytes.length, staged.bytes);
    staged.bytes += bytes.length;
  }

  /** Uploads the files staged for `snapshotId`, then removes them. */
  private async upload(snapshotId: number): Promise<void> {
    const client = this.client;
    if (client === undefined) throw new Error('s3 sink used before open()');
    const dir = join(this.stagingDir, String(snapshotId));
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return; // nothing was staged for it
    }
    for (const name of names) {
      const file = join(dir, name);
      const key = this.keyOf(partitionOfStaged(name), snapshotId);
      const { size } = await stat(file);
      try {
        const upload = new Upload({
          client,
          params: {
            Bucket: this.options.bucket,
            Key: key,
            Body: createReadStream(file),
            ContentType: this.contentType(),
          },
          partSize: this.options.part_size_mib * 1024 * 1024,
          queueSize: this.options.upload_concurrency,
          leavePartsOnError: false,
        });
        await upload.done();
      } catch (error) {
        throw new EtlError(
          'ETL_RUN_SINK_FAILED',
          `cannot upload s3://${this.options.bucket}/${key}: ${describe(error)}`,
          {
            cause: error,
            retriable: true,
          },
        );
      }
      this.uploadedObjects.inc();
      this.uploadedBytes.inc(size);
    }
    await rm(dir, { recursive: true, force: true });
  }

  private contentType(): string {
    if (this.options.compression === 'gzip') return 'application/gzip';
    return this.options.format === 'csv' ? 'text/csv' : 'application/x-ndjson';
  }
}

function newStaged(partition: string, startedAt: number): Staged {
  return { partition, startedAt, handle: undefined, bytes: 0, pending: '', pendingBytes: 0 };
}

/** A partition's staged file name: its key path with `/` as `~` (a partition name never holds `~`). */
function stagedName(partition: string): string {
  return partition.replaceAll('/', '~');
}

function partitionOfStaged(name: string): string {
  return name.replaceAll('~', '/');
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** An SDK error with its HTTP status, when it has one (a bare `UnknownError` says little). */
function describe(error: unknown): string {
  const status = (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
  return status === undefined ? errorMessage(error) : `${errorMessage(error)} (HTTP ${status})`;
}

function isState(value: unknown): value is S3SinkState {
  if (value === null || typeof value !== 'object') return false;
  const s = value as Record<string, unknown>;
  return (
    typeof s.lineage === 'string' &&
    Number.isSafeInteger(s.snapshot) &&
    Array.isArray(s.keys) &&
    Array.isArray(s.open) &&
    s.open.every(
      (o: unknown) =>
        o !== null &&
        typeof o === 'object' &&
        typeof (o as OpenObject).partition === 'string' &&
        Number.isSafeInteger((o as OpenObject).bytes) &&
        typeof (o as OpenObject).started_at === 'number',
    ) &&
    (s.fields === undefined || (Array.isArray(s.fields) && s.fields.every((f) => typeof f === 'string')))
  );
}
