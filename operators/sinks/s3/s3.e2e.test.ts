/**
 * `etl apply` from the s3 source through parse to the s3 sink, against s3rver: every line stored once in
 * partitioned gzip objects; a rerun finds nothing new and uploads nothing; an object added later is read by the
 * next run alone; a following run killed with SIGKILL leaves nothing the next run stores twice or loses.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etl, startEtl } from '../../../test/support/cli.ts';
import { type S3Connection, TestS3Server } from '../../../test/support/s3-server.ts';
import { until } from '../../../test/support/until.ts';

let server: TestS3Server;
const dirs: string[] = [];
beforeAll(async () => {
  server = await TestS3Server.start();
});
afterAll(async () => {
  await server?.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Combined-format lines numbered from `from`, one a second from 2026-12-05 12:59:00 UTC. */
function lines(from: number, count: number): string {
  let out = '';
  for (let n = from; n < from + count; n++) {
    const time = new Date(Date.UTC(2026, 11, 5, 12, 59, 0) + n * 1000);
    // `Sat, 05 Dec 2026 12:59:00 GMT`
    const [, day, month, year, clock] = /^\w+, (\d+) (\w+) (\d+) ([\d:]+)/.exec(time.toUTCString()) ?? [];
    out += `10.0.0.${n % 250} - - [${day}/${month}/${year}:${clock} +0000] "GET /item/${n} HTTP/1.1" 200 ${n} "-" "curl/8.5"\n`;
  }
  return out;
}

/** `follow`: the source lists the bucket again every 0.2 s, and the run goes on until it is stopped. */
async function setup(checkpointSeconds: number, rollSeconds = 300, follow = false) {
  const logs = await server.bucket();
  const archive = await server.bucket();
  const dir = mkdtempSync(join(tmpdir(), 'etl-s3-e2e-'));
  dirs.push(dir);
  const connection = (c: S3Connection) =>
    `bucket: ${c.bucket}, endpoint: "${c.endpoint}", force_path_style: true, access_key_id: S3RVER, ` +
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the pipeline reads the secret from the environment
    'secret_access_key: "${secret:TEST_S3_SECRET}"';
  const pipeline = join(dir, 'pipeline.yaml');
  writeFileSync(
    pipeline,
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: s3e2e }
spec:
  settings: { data_dir: ${join(dir, '.etl')}, checkpoint_interval_seconds: ${checkpointSeconds}, batch_max_records: 500 }
  sources:
    logs: { type: s3, ${connection(logs)}, prefix: "nginx/"${follow ? ', follow: true, poll_interval_seconds: 0.2' : ''} }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
  sinks:
    archive: { type: s3, inputs: [parsed], ${connection(archive)}, prefix: "parsed/", roll_interval_seconds: ${rollSeconds} }
`,
  );
  const client = server.client(logs);
  const put = (key: string, body: Buffer) =>
    client.send(new PutObjectCommand({ Bucket: logs.bucket, Key: key, Body: body }));
  const apply = () => etl(['apply', pipeline], { cwd: dir, env: { TEST_S3_SECRET: 'S3RVER' } });
  const start = () => startEtl(['apply', pipeline], { cwd: dir, env: { TEST_S3_SECRET: 'S3RVER' } });
  /** key → the `path` of every record the archive holds in it. */
  const archived = async (): Promise<Map<string, string[]>> => {
    const reader = server.client(archive);
    const out = new Map<string, string[]>();
    const listed = await reader.send(new ListObjectsV2Command({ Bucket: archive.bucket }));
    for (const item of listed.Contents ?? []) {
      const got = await reader.send(new GetObjectCommand({ Bucket: archive.bucket, Key: item.Key }));
      const bytes = Buffer.from(
        await (got.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
      );
      const text = gunzipSync(bytes).toString('utf8');
      out.set(
        item.Key as string,
        text
          .trimEnd()
          .split('\n')
          .map((line) => (JSON.parse(line) as { path: string }).path),
      );
    }
    reader.destroy();
    return out;
  };
  return { put, apply, start, archived, close: () => client.destroy() };
}

const paths = (from: number, count: number) => Array.from({ length: count }, (_, i) => `/item/${from + i}`);
const sortedPaths = (archive: Map<string, string[]>) =>
  [...archive.values()].flat().sort((a, b) => Number(a.slice(6)) - Number(b.slice(6)));

describe('s3 → parse → s3 through etl apply', () => {
  it('stores every line once, partitioned by hour; a rerun adds only what is new', async () => {
    const run = await setup(1);
    await run.put('nginx/a.log.gz', gzipSync(lines(0, 1500)));
    await run.put('nginx/b.log', Buffer.from(lines(1500, 1500)));
    const first = await run.apply();
    expect(first.code).toBe(0);
    expect(first.stderr).not.toMatch(/WARN|ERROR/);
    expect(first.stderr).toMatch(/to archive\s+3,000 records written/);
    const afterFirst = await run.archived();
    expect(sortedPaths(afterFirst)).toEqual(paths(0, 3000));
    // 12:59:00 + 3000 s runs through the hours 12, 13 and 13:49.
    const hours = new Set([...afterFirst.keys()].map((key) => /dt=2026-12-05\/hour=(\d\d)\//.exec(key)?.[1]));
    expect(hours).toEqual(new Set(['12', '13']));
    const second = await run.apply();
    expect(second.code).toBe(0);
    expect(await run.archived()).toEqual(afterFirst);
    await run.put('nginx/c.log', Buffer.from(lines(3000, 10)));
    const third = await run.apply();
    expect(third.code).toBe(0);
    const afterThird = await run.archived();
    expect(sortedPaths(afterThird)).toEqual(paths(0, 3010));
    expect(afterThird.size).toBe(afterFirst.size + 1);
    run.close();
  });

  it('stores every line exactly once after a process killed mid-run is run again', async () => {
    // Objects gather over several checkpoints: the kill finds some uploaded, some open, maybe one sealed. The source
    // follows the bucket, so the run is still going when it is killed however fast it read (a finite run of these
    // lines could end before the kill: seen in CI), and the second object arrives only after the kill.
    const run = await setup(0.2, 1, true);
    await run.put('nginx/big-1.log.gz', gzipSync(lines(0, 30_000)));
    const first = run.start();
    await until(async () => (await run.archived()).size > 0, 'a first uploaded object', 120_000);
    first.child.kill('SIGKILL');
    const killed = await first.done;
    expect(killed.signal).toBe('SIGKILL');
    const partial = sortedPaths(await run.archived());
    expect(partial.length).toBeGreaterThan(0);
    expect(partial.length).toBeLessThanOrEqual(30_000);
    await run.put('nginx/big-2.log', Buffer.from(lines(30_000, 30_000)));
    const second = run.start();
    await until(
      async () => sortedPaths(await run.archived()).length >= 60_000,
      'every line archived by the second run',
      120_000,
    );
    second.child.kill('SIGINT');
    const stopped = await second.done;
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(sortedPaths(await run.archived())).toEqual(paths(0, 60_000));
    run.close();
  });
});
