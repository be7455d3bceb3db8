/**
 * The write-ahead log on a real directory: entries read back in order across segments, grouped fsyncs, a torn or
 * zeroed tail truncated on opening (never read back), deletion of committed segments, the size bound, the lock.
 */
import { appendFile, mkdtemp, readdir, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SegmentLog, type SegmentLogOptions } from './wal.ts';

const dirs: string[] = [];
const logs: SegmentLog[] = [];
afterEach(async () => {
  for (const log of logs.splice(0)) await log.close();
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'etl-wal-'));
  dirs.push(dir);
  return dir;
}

async function openLog(dir: string, patch: Partial<SegmentLogOptions> = {}): Promise<SegmentLog> {
  const log = await SegmentLog.open({
    dir,
    maxBytes: 1 << 20,
    segmentBytes: 4096,
    fsync: true,
    from: undefined,
    holder: 'wal test',
    ...patch,
  });
  logs.push(log);
  return log;
}

async function readAll(log: SegmentLog, from = log.start): Promise<string[]> {
  const out: string[] = [];
  for (let entry = await log.read(from); entry; entry = await log.read(entry.next)) {
    out.push(entry.payload.toString());
  }
  return out;
}

async function closeLog(log: SegmentLog): Promise<void> {
  await log.close();
  logs.splice(logs.indexOf(log), 1);
}

describe('write-ahead log', () => {
  it('reads back every entry in order across segments, and again after reopening', async () => {
    const dir = await tempDir();
    const log = await openLog(dir);
    const payloads = Array.from({ length: 40 }, (_, i) => `entry ${i} ${'x'.repeat(300)}`);
    for (const p of payloads) await log.append(Buffer.from(p));
    expect((await readdir(dir)).filter((n) => n.endsWith('.wal')).length).toBeGreaterThan(2);
    expect(await readAll(log)).toEqual(payloads);
    await closeLog(log);
    const again = await openLog(dir);
    expect(await readAll(again)).toEqual(payloads);
    expect(again.end).toBe(log.end);
  });

  it('writes appends made together in one group (one fsync), not one each', async () => {
    const dir = await tempDir();
    const groups: number[] = [];
    const log = await openLog(dir, { segmentBytes: 1 << 20, onGroup: (n) => groups.push(n) });
    const positions = await Promise.all(Array.from({ length: 50 }, (_, i) => log.append(Buffer.from(`r${i}`))));
    expect(groups.reduce((a, b) => a + b, 0)).toBe(50);
    expect(groups).toEqual([50]);
    // Positions follow each other in the order of the calls.
    for (let i = 1; i < positions.length; i++) expect(positions[i]?.offset).toBe(positions[i - 1]?.next);
    expect(await readAll(log)).toEqual(Array.from({ length: 50 }, (_, i) => `r${i}`));
  });

  it('truncates a torn entry at the tail on opening, and appends after what checked out', async () => {
    const dir = await tempDir();
    const truncated: Array<{ at: number; dropped: number }> = [];
    const log = await openLog(dir, { segmentBytes: 1 << 20 });
    for (const p of ['one', 'two', 'three']) await log.append(Buffer.from(p));
    const end = log.end;
    await closeLog(log);
    const [segment] = (await readdir(dir)).filter((n) => n.endsWith('.wal'));
    const file = join(dir, segment as string);
    // A header announcing 100 bytes, and 10 of them: a write cut by a crash.
    const header = Buffer.alloc(8);
    header.writeUInt32BE(100, 0);
    await appendFile(file, Buffer.concat([header, Buffer.alloc(10, 0x61)]));
    const reopened = await openLog(dir, { onTruncated: (_f, at, dropped) => truncated.push({ at, dropped }) });
    expect(truncated).toEqual([{ at: end, dropped: 18 }]);
    expect((await stat(file)).size).toBe(end);
    await reopened.append(Buffer.from('four'));
    expect(await readAll(reopened)).toEqual(['one', 'two', 'three', 'four']);
  });

  it('truncates a tail whose checksum fails, and a zeroed tail (the checksum of nothing is 0)', async () => {
    const dir = await tempDir();
    const log = await openLog(dir, { segmentBytes: 1 << 20 });
    await log.append(Buffer.from('kept'));
    const kept = log.end;
    await log.append(Buffer.from('flipped'));
    await closeLog(log);
    const [segment] = (await readdir(dir)).filter((n) => n.endsWith('.wal'));
    const file = join(dir, segment as string);
    // Flip the last payload byte, then add zeros as a file system extending the file without data leaves.
    const { readFile, writeFile } = await import('node:fs/promises');
    const bytes = await readFile(file);
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 0xff;
    await writeFile(file, Buffer.concat([bytes, Buffer.alloc(4096)]));
    const truncated: number[] = [];
    const reopened = await openLog(dir, { onTruncated: (_f, at) => truncated.push(at) });
    expect(truncated).toEqual([kept]);
    expect(await readAll(reopened)).toEqual(['kept']);

    // Only zeros after a good entry.
    await reopened.append(Buffer.from('next'));
    await closeLog(reopened);
    await truncate(file, (await stat(file)).size + 64);
    const zeroed: number[] = [];
    const third = await openLog(dir, { onTruncated: (_f, _at, dropped) => zeroed.push(dropped) });
    expect(zeroed).toEqual([64]);
    expect(await readAll(third)).toEqual(['kept', 'next']);
  });

  it('deletes the segments a committed position covers, and starts a reopened log there', async () => {
    const dir = await tempDir();
    const log = await openLog(dir);
    const positions = [];
    for (let i = 0; i < 30; i++) positions.push(await log.append(Buffer.from(`e${i} ${'y'.repeat(400)}`)));
    const segments = async () => (await readdir(dir)).filter((n) => n.endsWith('.wal')).sort();
    const before = await segments();
    const committed = positions[20]?.offset as number;
    await log.release(committed);
    const after = await segments();
    expect(after.length).toBeLessThan(before.length);
    // What is left still holds entry 20 on.
    expect((await readAll(log, committed)).slice(0, 1)[0]).toMatch(/^e20 /);
    expect(log.bytes).toBeLessThan(log.end);
    await closeLog(log);
    const reopened = await openLog(dir, { from: committed });
    expect(reopened.start).toBeLessThanOrEqual(committed);
    expect((await readAll(reopened, committed)).length).toBe(10);
  });

  it('starts at the checkpointed position when the directory was emptied', async () => {
    const dir = await tempDir();
    const log = await openLog(dir, { from: 123_456 });
    expect(log.start).toBe(123_456);
    const { offset } = await log.append(Buffer.from('a'));
    expect(offset).toBe(123_456);
  });

  it('says when an entry does not fit: full now, or never', async () => {
    const dir = await tempDir();
    const log = await openLog(dir, { maxBytes: 65_536, segmentBytes: 16_384 });
    expect(log.room(70_000)).toBe('too_large');
    expect(log.room(1000)).toBe('fits');
    await log.append(Buffer.alloc(60_000, 0x62));
    expect(log.room(10_000)).toBe('full');
    expect(log.room(1000)).toBe('fits');
  });

  it('refuses a directory another holder has locked', async () => {
    const dir = await tempDir();
    await openLog(dir);
    await expect(openLog(dir)).rejects.toMatchObject({ code: 'ETL_LOCKED' });
  });
});
