/** The s3 source through its contract, against a real S3-compatible server (s3rver) on a free local port. */
import { gzipSync } from 'node:zlib';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SourceContext, SourceOutput } from '../../../engine/operator.ts';
import { type EtlRecord, ORIGIN, type Origin } from '../../../engine/record.ts';
import { recordingContext } from '../../../test/support/context.ts';
import { type S3Connection, TestS3Server } from '../../../test/support/s3-server.ts';
import definition from './index.ts';
import type { S3Position } from './position.ts';
import { createS3Source, type S3SourceTuning } from './s3.ts';
import type { S3SourceOptions } from './schema.ts';

const ajv = new Ajv({ useDefaults: true, strict: false });
const validate = ajv.compile(definition.schema);

let server: TestS3Server;
beforeAll(async () => {
  server = await TestS3Server.start();
});
afterAll(async () => {
  await server?.stop();
});

function options(connection: S3Connection, patch: Record<string, unknown> = {}): S3SourceOptions {
  const value = { ...connection, ...structuredClone(patch) };
  if (!validate(value)) throw new Error(ajv.errorsText(validate.errors));
  return value as unknown as S3SourceOptions;
}

interface Emission {
  readonly records: EtlRecord[];
  readonly position: S3Position;
}

/** Runs the source (in the background) with an output that records every batch and every input error. */
function start(opts: S3SourceOptions, restoredPosition?: unknown, batchMaxRecords = 100, tuning?: S3SourceTuning) {
  const stop = new AbortController();
  const emissions: Emission[] = [];
  const inputErrors: string[] = [];
  const waiters = new Set<() => void>();
  const out: SourceOutput = {
    stopping: stop.signal,
    emit: async (records, position) => {
      if (stop.signal.aborted) return { sent: false, durable: () => Promise.reject(new Error('stopped')) };
      emissions.push({ records, position: position as S3Position });
      for (const wake of waiters) wake();
      return { sent: true, durable: () => Promise.resolve() };
    },
    progress: () => {},
    onCommitted: () => {},
    inputError: (reason) => {
      inputErrors.push(reason);
    },
  };
  const ctx: SourceContext = { ...recordingContext({ id: 'bucket' }), restoredPosition, batchMaxRecords };
  const source = createS3Source(opts, ctx, tuning);
  const done = source.run(out).finally(() => source.close?.());
  const lines = () => emissions.flatMap((e) => e.records.map((r) => r.message as string));
  /** Resolves once `check` holds after some emission. */
  const until = (check: () => boolean): Promise<void> =>
    new Promise((resolve, reject) => {
      const test = () => {
        if (!check()) return;
        waiters.delete(test);
        resolve();
      };
      waiters.add(test);
      done.then(() => (check() ? resolve() : reject(new Error('the source ended first'))), reject);
      test();
    });
  return { stop, emissions, inputErrors, done, lines, until };
}

async function put(client: S3Client, bucket: string, key: string, body: string | Buffer, encoding?: string) {
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentEncoding: encoding }));
}

function text(prefix: string, count: number): string {
  return Array.from({ length: count }, (_, i) => `${prefix} line ${i + 1}\n`).join('');
}

describe('s3 source', () => {
  it('lists every key over several pages, reads them in key order and ends', async () => {
    const connection = await server.bucket();
    const client = server.client(connection);
    const keys = Array.from({ length: 230 }, (_, i) => `logs/host-${String(i).padStart(4, '0')}.log`);
    for (let i = 0; i < keys.length; i += 20) {
      await Promise.all(keys.slice(i, i + 20).map((key) => put(client, connection.bucket, key, `${key} a\n${key} b`)));
    }
    await put(client, connection.bucket, 'other/skipped.log', 'not under the prefix\n');
    client.destroy();
    const run = start(options(connection, { prefix: 'logs/', late_arrival_seconds: 0 }), undefined, 100, {
      pageSize: 50,
    });
    await run.done;
    expect(run.lines()).toEqual(keys.flatMap((key) => [`${key} a`, `${key} b`]));
    const last = run.emissions.at(-1)?.position;
    // Every key settled: the watermark alone says they are done.
    expect(last).toEqual({
      bucket: connection.bucket,
      prefix: 'logs/',
      watermark: keys.at(-1),
      done: [],
      partial: null,
    });
    const origin = run.emissions[0]?.records[1]?.[ORIGIN] as Origin;
    expect(origin).toEqual({
      source: 'bucket',
      file: `s3://${connection.bucket}/logs/host-0000.log`,
      offset: 'logs/host-0000.log a\n'.length,
      line: 2,
    });
  });

  it('keeps recent keys past the watermark until late_arrival_seconds has passed', async () => {
    const connection = await server.bucket();
    const client = server.client(connection);
    await put(client, connection.bucket, 'a.log', 'a\n');
    await put(client, connection.bucket, 'b.log', 'b\n');
    client.destroy();
    const run = start(options(connection, { late_arrival_seconds: 3600 }));
    await run.done;
    expect(run.emissions.at(-1)?.position).toMatchObject({ watermark: null, done: ['a.log', 'b.log'] });
    // A rerun from that position reads nothing again.
    const again = start(options(connection, { late_arrival_seconds: 3600 }), run.emissions.at(-1)?.position);
    await again.done;
    expect(again.lines()).toEqual([]);
  });

  it('reads gzip objects told by extension, by Content-Encoding and by magic bytes, multi-member too', async () => {
    const connection = await server.bucket();
    const client = server.client(connection);
    await put(client, connection.bucket, '1-by-name.log.gz', gzipSync(text('named', 3)));
    await put(client, connection.bucket, '2-by-header.log', gzipSync(text('header', 2)), 'gzip');
    await put(
      client,
      connection.bucket,
      '3-by-magic.log',
      Buffer.concat([gzipSync(text('member-one', 2)), gzipSync(text('member-two', 1))]),
    );
    await put(client, connection.bucket, '4-plain.log', text('plain', 2));
    client.destroy();
    const run = start(options(connection));
    await run.done;
    expect(run.lines()).toEqual([
      ...text('named', 3).trimEnd().split('\n'),
      ...text('header', 2).trimEnd().split('\n'),
      'member-one line 1',
      'member-one line 2',
      'member-two line 1',
      ...text('plain', 2).trimEnd().split('\n'),
    ]);
    expect(run.inputErrors).toEqual([]);
  });

  it('reports a cut gzip object, keeps the lines before the damage and goes on', async () => {
    const connection = await server.bucket();
    const client = server.client(connection);
    const whole = gzipSync(text('cut', 2000));
    await put(client, connection.bucket, 'a-cut.log.gz', whole.subarray(0, Math.floor(whole.length / 2)));
    await put(client, connection.bucket, 'b-next.log', 'after\n');
    client.destroy();
    const run = start(options(connection));
    await run.done;
    expect(run.inputErrors).toHaveLength(1);
    expect(run.inputErrors[0]).toMatch(/gzip/);
    const lines = run.lines();
    expect(lines.at(-1)).toBe('after');
    expect(lines.length).toBeGreaterThan(1);
    expect(lines.slice(0, -1)).toEqual(
      text('cut', lines.length - 1)
        .trimEnd()
        .split('\n'),
    );
  });

  it.each([
    ['plain', 'big.log', (s: string) => s],
    ['gzip', 'big.log.gz', (s: string) => gzipSync(s)],
  ] as const)('resumes a %s object after a stop mid-object, each line exactly once', async (_kind, key, encode) => {
    const connection = await server.bucket();
    const client = server.client(connection);
    const body = text('resume', 5000);
    await put(client, connection.bucket, key, encode(body));
    await put(client, connection.bucket, 'z-after.log', 'z\n');
    client.destroy();
    const first = start(options(connection), undefined, 100);
    await first.until(() => first.emissions.length >= 7);
    first.stop.abort();
    await first.done;
    // The checkpoint holds the position of some batch: what followed it is read again by the rerun.
    const kept = first.emissions.slice(0, 5);
    const position = kept.at(-1)?.position;
    expect(position?.partial).toMatchObject({ key, gzip: key.endsWith('.gz'), line: 500 });
    const second = start(options(connection), position, 100);
    await second.done;
    const lines = [...kept.flatMap((e) => e.records.map((r) => r.message as string)), ...second.lines()];
    expect(lines).toEqual([...body.trimEnd().split('\n'), 'z']);
    const resumedOrigin = second.emissions[0]?.records[0]?.[ORIGIN] as Origin;
    expect(resumedOrigin).toMatchObject({ line: 501, offset: position?.partial?.offset });
  });

  it('reads an object again from its start when it was replaced since the checkpoint', async () => {
    const connection = await server.bucket();
    const client = server.client(connection);
    await put(client, connection.bucket, 'k.log', text('old', 300));
    const first = start(options(connection), undefined, 100);
    await first.until(() => first.emissions.length >= 1);
    first.stop.abort();
    await first.done;
    await put(client, connection.bucket, 'k.log', text('new', 3));
    client.destroy();
    const second = start(options(connection), first.emissions[0]?.position);
    await second.done;
    expect(second.lines()).toEqual(text('new', 3).trimEnd().split('\n'));
  });

  it('follows the bucket: objects put later are read at the next poll, until stopped', async () => {
    const connection = await server.bucket();
    const client = server.client(connection);
    await put(client, connection.bucket, '2026/12/05/10.log', 'ten\n');
    const run = start(options(connection, { follow: true, poll_interval_seconds: 0.2, late_arrival_seconds: 0 }));
    await run.until(() => run.lines().includes('ten'));
    await put(client, connection.bucket, '2026/12/05/11.log', 'eleven\ntwelve\n');
    await run.until(() => run.lines().includes('twelve'));
    await put(client, connection.bucket, '2026/12/05/12.log', 'thirteen\n');
    await run.until(() => run.lines().includes('thirteen'));
    run.stop.abort();
    await run.done;
    client.destroy();
    expect(run.lines()).toEqual(['ten', 'eleven', 'twelve', 'thirteen']);
    expect(run.emissions.at(-1)?.position.watermark).toBe('2026/12/05/12.log');
  });
});
