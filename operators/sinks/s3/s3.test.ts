/**
 * The s3 sink through its contract against a real S3-compatible server (s3rver): partitioned keys, gzip and CSV,
 * multipart uploads, and exactly once across a crash between the two phases of a checkpoint (the sink is
 * abandoned after `prepareCommit`, as a killed process leaves it, and a new one restores).
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sink, SinkWriteContext } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import { recordingContext } from '../../../test/support/context.ts';
import { type S3Connection, TestS3Server } from '../../../test/support/s3-server.ts';
import definition from './index.ts';
import { createS3Sink, type S3SinkState } from './s3.ts';
import type { S3SinkOptions } from './schema.ts';

const ajv = new Ajv({ useDefaults: true, strict: false });
const validate = ajv.compile(definition.schema);

let server: TestS3Server;
beforeAll(async () => {
  server = await TestS3Server.start();
});
afterAll(async () => {
  await server?.stop();
});

/** Options for `connection`; objects are sealed at every checkpoint unless `patch` says otherwise. */
function options(connection: S3Connection, patch: Record<string, unknown> = {}): S3SinkOptions {
  const value = { ...connection, roll_interval_seconds: 0, ...structuredClone(patch) };
  if (!validate(value)) throw new Error(ajv.errorsText(validate.errors));
  return value as unknown as S3SinkOptions;
}

function collector(): SinkWriteContext & { rejected: Array<{ record: EtlRecord; reason: string }> } {
  const rejected: Array<{ record: EtlRecord; reason: string }> = [];
  return { rejected, deadLetter: (record, reason) => rejected.push({ record, reason }) };
}

async function openSink(opts: S3SinkOptions, dataDir: string, state?: unknown, snapshotId?: number): Promise<Sink> {
  const sink = createS3Sink(opts, recordingContext({ pipeline: 'web', id: 'archive', dataDir }));
  await sink.open?.();
  await sink.restore?.(state, snapshotId);
  return sink;
}

async function checkpoint(sink: Sink, id: number): Promise<S3SinkState> {
  const snapshot = { id, positions: {} };
  const state = (await sink.prepareCommit?.(snapshot, collector())) as S3SinkState;
  await sink.commit?.(snapshot);
  return state;
}

/** Every object in the bucket: key → its text (gunzipped when the key ends in .gz). */
async function objects(connection: S3Connection): Promise<Map<string, string>> {
  const client = server.client(connection);
  const out = new Map<string, string>();
  const listed = await client.send(new ListObjectsV2Command({ Bucket: connection.bucket }));
  for (const item of listed.Contents ?? []) {
    const key = item.Key as string;
    const body = await client.send(new GetObjectCommand({ Bucket: connection.bucket, Key: key }));
    const bytes = Buffer.from(
      await (body.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
    );
    out.set(key, (key.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString('utf8'));
  }
  client.destroy();
  return out;
}

function request(n: number, timestamp: string): EtlRecord {
  return { timestamp, path: `/page/${n}`, status: 200, n };
}

/** The `n` of every JSON line of every object, sorted. */
function numbers(contents: Map<string, string>): number[] {
  return [...contents.values()]
    .flatMap((text) => text.trimEnd().split('\n'))
    .map((line) => (JSON.parse(line) as { n: number }).n)
    .sort((a, b) => a - b);
}

const dataDir = () => mkdtempSync(join(tmpdir(), 'etl-s3-sink-'));

describe('s3 sink', () => {
  it('writes gzip JSON lines partitioned by hour, one object per partition and checkpoint', async () => {
    const connection = await server.bucket();
    const dir = dataDir();
    const sink = await openSink(options(connection, { prefix: 'web/' }), dir);
    const ctx = collector();
    await sink.write(
      [
        request(1, '2026-12-05T13:05:00Z'),
        request(2, '2026-12-05T14:59:59.999Z'),
        { path: '/no-time' },
        request(3, '2026-12-05T13:59:00+00:00'),
        request(4, '2026-12-06T00:00:00Z'),
      ],
      ctx,
    );
    expect(ctx.rejected.map((r) => r.reason)).toEqual(['no time in field `timestamp` to partition by']);
    const state = await checkpoint(sink, 1);
    await sink.write([request(5, '2026-12-05T13:30:00Z')], collector());
    await checkpoint(sink, 2);
    await sink.close?.();
    const name = (id: number) => `web-archive-${state.lineage}-${String(id).padStart(10, '0')}.jsonl.gz`;
    const contents = await objects(connection);
    expect([...contents.keys()].sort()).toEqual([
      `web/dt=2026-12-05/hour=13/${name(1)}`,
      `web/dt=2026-12-05/hour=13/${name(2)}`,
      `web/dt=2026-12-05/hour=14/${name(1)}`,
      `web/dt=2026-12-06/hour=00/${name(1)}`,
    ]);
    expect(state.keys).toHaveLength(3);
    const lines = contents
      .get(`web/dt=2026-12-05/hour=13/${name(1)}`)
      ?.trimEnd()
      .split('\n');
    expect(lines?.map((l) => JSON.parse(l))).toEqual([
      request(1, '2026-12-05T13:05:00Z'),
      request(3, '2026-12-05T13:59:00+00:00'),
    ]);
    // Nothing is left staged once committed.
    const staging = join(dir, 's3-sink', 'archive');
    expect(readdirSync(staging)).toEqual(['open']);
    expect(readdirSync(join(staging, 'open'))).toEqual([]);
  });

  it('writes CSV by day with a header in every object, uncompressed', async () => {
    const connection = await server.bucket();
    const sink = await openSink(
      options(connection, { format: 'csv', compression: 'none', partition: 'day', fields: ['timestamp', 'path'] }),
      dataDir(),
    );
    await sink.write([request(1, '2026-12-05T01:00:00Z'), request(2, '2026-12-06T23:00:00Z')], collector());
    await sink.write([request(3, '2026-12-05T02:00:00Z')], collector());
    const state = await checkpoint(sink, 7);
    await sink.close?.();
    const contents = await objects(connection);
    expect(Object.fromEntries(contents)).toEqual({
      [`dt=2026-12-05/web-archive-${state.lineage}-0000000007.csv`]:
        'timestamp,path\n2026-12-05T01:00:00Z,/page/1\n2026-12-05T02:00:00Z,/page/3\n',
      [`dt=2026-12-06/web-archive-${state.lineage}-0000000007.csv`]: 'timestamp,path\n2026-12-06T23:00:00Z,/page/2\n',
    });
  });

  it('uploads an object larger than part_size_mib in parts, whole', async () => {
    const connection = await server.bucket();
    const sink = await openSink(options(connection, { compression: 'none', part_size_mib: 5 }), dataDir());
    const padding = 'x'.repeat(1000);
    const count = 12_000; // about 12 MiB: three parts
    for (let i = 0; i < count; i += 1000) {
      await sink.write(
        Array.from({ length: 1000 }, (_, j) => ({ ...request(i + j, '2026-12-05T13:00:00Z'), padding })),
        collector(),
      );
    }
    await checkpoint(sink, 1);
    await sink.close?.();
    const contents = await objects(connection);
    expect(contents.size).toBe(1);
    const text = [...contents.values()][0] as string;
    expect(Buffer.byteLength(text)).toBeGreaterThan(10 * 1024 * 1024);
    expect(numbers(contents)).toEqual(Array.from({ length: count }, (_, i) => i));
    // Three parts went up (the server logs each request).
    const parts = server.log.filter(
      (line) => /Stored part \d+ of /.test(line) && line.includes(`"${connection.bucket}"`),
    );
    expect(parts).toHaveLength(3);
  });

  it('uploads after a rerun what a crash left staged for a recorded checkpoint, exactly once', async () => {
    const connection = await server.bucket();
    const dir = dataDir();
    const opts = options(connection);
    const first = await openSink(opts, dir);
    await first.write([request(1, '2026-12-05T13:00:00Z')], collector());
    await checkpoint(first, 1);
    await first.write([request(2, '2026-12-05T13:10:00Z'), request(3, '2026-12-05T15:00:00Z')], collector());
    // Killed after phase one: the engine recorded snapshot 2 with this state, and nothing was uploaded.
    const recorded = (await first.prepareCommit?.({ id: 2, positions: {} }, collector())) as S3SinkState;
    await first.close?.();
    expect(numbers(await objects(connection))).toEqual([1]);
    const rerun = await openSink(opts, dir, recorded, 2);
    expect(numbers(await objects(connection))).toEqual([1, 2, 3]);
    await rerun.write([request(4, '2026-12-05T13:20:00Z')], collector());
    await checkpoint(rerun, 3);
    await rerun.close?.();
    const contents = await objects(connection);
    expect(numbers(contents)).toEqual([1, 2, 3, 4]);
    expect(contents.size).toBe(4);
    // A second rerun from the same checkpoint finds nothing staged and uploads nothing again.
    const again = await openSink(opts, dir, recorded, 2);
    await again.close?.();
    expect(numbers(await objects(connection))).toEqual([1, 2, 3, 4]);
  });

  it('drops on a rerun what was staged for a checkpoint never recorded; the replay is stored once', async () => {
    const connection = await server.bucket();
    const dir = dataDir();
    const opts = options(connection);
    const first = await openSink(opts, dir);
    await first.write([request(1, '2026-12-05T13:00:00Z')], collector());
    const recorded = await checkpoint(first, 1);
    await first.write([request(2, '2026-12-05T13:10:00Z')], collector());
    // Killed after phase one of snapshot 2, before the engine recorded it: the run resumes from snapshot 1.
    await first.prepareCommit?.({ id: 2, positions: {} }, collector());
    await first.write([request(3, '2026-12-05T13:20:00Z')], collector());
    await first.close?.();
    const rerun = await openSink(opts, dir, recorded, 1);
    // The sources replay what followed snapshot 1, in other batches this time.
    await rerun.write([request(2, '2026-12-05T13:10:00Z'), request(3, '2026-12-05T13:20:00Z')], collector());
    await checkpoint(rerun, 2);
    await rerun.close?.();
    const contents = await objects(connection);
    expect(numbers(contents)).toEqual([1, 2, 3]);
    // Same lineage: the rerun's keys continue the first run's.
    expect([...contents.keys()].every((key) => key.includes(`-${recorded.lineage}-`))).toBe(true);
  });

  it('gathers a partition over checkpoints until roll_interval_seconds, and seals everything at the end', async () => {
    const connection = await server.bucket();
    const sink = await openSink(options(connection, { roll_interval_seconds: 3600 }), dataDir());
    await sink.write([request(1, '2026-12-05T13:00:00Z'), request(2, '2026-12-05T14:00:00Z')], collector());
    const first = await checkpoint(sink, 1);
    expect(first.keys).toEqual([]);
    expect(first.open.map((o) => o.partition).sort()).toEqual(['dt=2026-12-05/hour=13', 'dt=2026-12-05/hour=14']);
    await sink.write([request(3, '2026-12-05T13:30:00Z')], collector());
    await checkpoint(sink, 2);
    expect((await objects(connection)).size).toBe(0);
    await sink.flush?.();
    const last = await checkpoint(sink, 3);
    await sink.close?.();
    expect(last.open).toEqual([]);
    const contents = await objects(connection);
    expect([...contents.keys()].sort()).toEqual(last.keys.slice().sort());
    expect(contents.size).toBe(2);
    expect(numbers(contents)).toEqual([1, 2, 3]);
  });

  it('asks for a checkpoint once an object is due, as an idle pipeline takes none', async () => {
    const connection = await server.bucket();
    let asked: () => void = () => {};
    const requested = new Promise<void>((resolve) => {
      asked = resolve;
    });
    const sink = createS3Sink(
      options(connection, { roll_interval_seconds: 0.5 }),
      recordingContext({ pipeline: 'web', id: 'archive', dataDir: dataDir(), requestCheckpoint: () => asked() }),
    );
    await sink.open?.();
    await sink.restore?.(undefined, undefined);
    await sink.write([request(1, '2026-12-05T13:00:00Z')], collector());
    await requested;
    const state = await checkpoint(sink, 1);
    await sink.close?.();
    expect(state.keys).toHaveLength(1);
    expect(numbers(await objects(connection))).toEqual([1]);
  });

  it('takes back an open object at its checkpointed length after a crash, from a seal never recorded too', async () => {
    for (const sealedBeforeCrash of [false, true]) {
      const connection = await server.bucket();
      const dir = dataDir();
      const opts = options(connection, { roll_interval_seconds: 3600 });
      const first = await openSink(opts, dir);
      await first.write([request(1, '2026-12-05T13:00:00Z')], collector());
      const recorded = await checkpoint(first, 1);
      await first.write([request(2, '2026-12-05T13:10:00Z')], collector());
      // Killed after phase one of snapshot 2 (which sealed the object, or not), before the engine recorded it.
      if (sealedBeforeCrash) await first.flush?.();
      const unrecorded = (await first.prepareCommit?.({ id: 2, positions: {} }, collector())) as S3SinkState;
      expect(unrecorded.keys).toHaveLength(sealedBeforeCrash ? 1 : 0);
      await first.close?.();
      const rerun = await openSink(opts, dir, recorded, 1);
      await rerun.write([request(2, '2026-12-05T13:10:00Z'), request(3, '2026-12-05T13:20:00Z')], collector());
      await rerun.flush?.();
      await checkpoint(rerun, 2);
      await rerun.close?.();
      const contents = await objects(connection);
      expect(contents.size).toBe(1);
      expect(numbers(contents)).toEqual([1, 2, 3]);
    }
  });

  it('fails at open, naming the bucket, when the bucket does not exist', async () => {
    const connection = await server.bucket();
    const sink = createS3Sink(
      options({ ...connection, bucket: 'no-such-bucket-here' }),
      recordingContext({ dataDir: dataDir() }),
    );
    await expect(sink.open?.()).rejects.toThrow(/no-such-bucket-here/);
    await sink.close?.();
  });
});
