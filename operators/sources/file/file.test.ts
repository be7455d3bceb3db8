import {
  appendFileSync,
  chmodSync,
  mkdirSync,
  renameSync,
  rmSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { createFileSource } from './file.ts';
import { READ_BUFFER_BYTES } from '../../shared/line-reader/lines.ts';
import { originKey } from '../../shared/origin-key.ts';
import type { FilePosition } from './position.ts';
import type { FileSourceOptions } from './schema.ts';
import { collectOutput, originOf, testContext, scratchDirs, sourceOptions } from './test-support.ts';

/** A modification time (seconds) for files whose reading order a test fixes. */
const T = Date.parse('2026-11-26T00:00:00Z') / 1000;
const workdir = scratchDirs('source');

const opts = sourceOptions;

/** Lines `<prefix> <i>` padded so the file passes the fingerprint length quickly. */
function lines(prefix: string, from: number, to: number): string[] {
  const out: string[] = [];
  for (let i = from; i < to; i++) out.push(`${prefix} line ${String(i).padStart(6, '0')} ${'x'.repeat(40)}`);
  return out;
}

const text = (ls: string[]): string => ls.map((l) => `${l}\n`).join('');

async function readOnce(options: FileSourceOptions, restoredPosition?: unknown, batchMaxRecords = 1000) {
  const ctx = testContext({ restoredPosition, batchMaxRecords });
  const source = createFileSource(options, ctx);
  const out = collectOutput();
  await source.run(out);
  await source.close?.();
  return { out, ctx };
}

describe('file source, reading to the end', () => {
  it('reads the files globs match once each, in path order when modified at once, leaving out excluded ones', async () => {
    const dir = workdir();
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'b.log'), 'b1\nb2\n');
    writeFileSync(join(dir, 'a.log'), 'a1\n');
    writeFileSync(join(dir, 'sub', 'c.log'), 'c1\n');
    writeFileSync(join(dir, 'skip.log'), 'nope\n');
    writeFileSync(join(dir, 'notes.txt'), 'not a log\n');
    for (const name of ['b.log', 'a.log', 'sub/c.log']) utimesSync(join(dir, name), T, T);
    const { out } = await readOnce(opts([join(dir, '*.log'), join(dir, '**/*.log')], { exclude: ['skip.log'] }));
    expect(out.messages).toEqual(['a1', 'b1', 'b2', 'c1']);
    const origins = out.records.map(originOf);
    expect(origins.map((o) => [o.file, o.offset, o.line])).toEqual([
      [join(dir, 'a.log'), 0, 1],
      [join(dir, 'b.log'), 0, 1],
      [join(dir, 'b.log'), 3, 2],
      [join(dir, 'sub', 'c.log'), 0, 1],
    ]);
    expect(origins.every((o) => o.source === 'src')).toBe(true);
    expect(out.batches.every((b) => b.records.every((r) => Object.keys(r).length === 1))).toBe(true);
  });

  it('reads a rotated set in the order it was written: by its numbers, whatever times the files were given', async () => {
    // logrotate's numbering sorts newest first by path; gzip keeps the time the file was last written.
    const dir = workdir();
    writeFileSync(join(dir, 'access.log'), 'new1\nnew2\n');
    writeFileSync(join(dir, 'access.log.1'), 'mid1\n');
    writeFileSync(join(dir, 'access.log.2.gz'), gzipSync('old1\nold2\n'));
    utimesSync(join(dir, 'access.log.2.gz'), T - 7200, T - 7200);
    utimesSync(join(dir, 'access.log.1'), T - 3600, T - 3600);
    utimesSync(join(dir, 'access.log'), T, T);
    const { out } = await readOnce(opts([join(dir, 'access.log*')]));
    expect(out.messages).toEqual(['old1', 'old2', 'mid1', 'new1', 'new2']);
    // A checkout or a copy gives the files times of its own: the numbers still tell the order.
    utimesSync(join(dir, 'access.log.2.gz'), T + 60, T + 60);
    utimesSync(join(dir, 'access.log'), T - 60, T - 60);
    const again = await readOnce(opts([join(dir, 'access.log*')]));
    expect(again.out.messages).toEqual(['old1', 'old2', 'mid1', 'new1', 'new2']);
    // Another file is read after the set when it is newer than the set's oldest member, before it when older.
    writeFileSync(join(dir, 'access.log.other'), 'other\n');
    utimesSync(join(dir, 'access.log.other'), T - 9000, T - 9000);
    const third = await readOnce(opts([join(dir, 'access.log*')]));
    expect(third.out.messages).toEqual(['other', 'old1', 'old2', 'mid1', 'new1', 'new2']);
  });

  it('resolves relative globs against the working directory', async () => {
    const dir = workdir();
    writeFileSync(join(dir, 'rel.log'), 'r1\n');
    const ctx = testContext({ baseDir: dir });
    const source = createFileSource(opts(['*.log']), ctx);
    const out = collectOutput();
    await source.run(out);
    expect(out.messages).toEqual(['r1']);
  });

  it('decompresses gzip by its magic bytes, with or without the .gz name, offsets in the decompressed stream', async () => {
    const dir = workdir();
    const content = lines('gz', 0, 500);
    writeFileSync(join(dir, 'a.log.gz'), gzipSync(text(content)));
    // Two gzip members concatenated, named without extension.
    writeFileSync(join(dir, 'b.log'), Buffer.concat([gzipSync(text(['m1', 'm2'])), gzipSync(text(['m3']))]));
    const { out } = await readOnce(opts([join(dir, '*')]));
    expect(out.messages).toEqual([...content, 'm1', 'm2', 'm3']);
    const second = originOf(out.records[1] as never);
    expect(second.offset).toBe((content[0] as string).length + 1);
    expect(originOf(out.records[502] as never)).toMatchObject({ offset: 6, line: 3 });
  });

  it('strips CR of CRLF endings, keeps a last line without newline, and cuts over-long lines', async () => {
    const dir = workdir();
    const long = 'é'.repeat(100); // 200 bytes, two per character
    writeFileSync(join(dir, 'a.log'), `one\r\ntwo\r\n${long}\nafter\nlast without newline`);
    const { out, ctx } = await readOnce(opts([join(dir, 'a.log')], { max_line_bytes: 51 }));
    expect(out.messages).toEqual(['one', 'two', 'é'.repeat(25), 'after', 'last without newline']);
    expect(out.records[2]).toMatchObject({ truncated: true });
    expect(out.records[3]).not.toHaveProperty('truncated');
    expect(originOf(out.records[3] as never)).toMatchObject({ offset: 10 + 201, line: 4 });
    expect(ctx.values.get('etl_source_truncated_lines_total')).toBe(1);
  });

  it('cuts a line longer than the read buffer and resumes at the next line', async () => {
    const dir = workdir();
    const huge = 'z'.repeat(700 * 1024);
    writeFileSync(join(dir, 'a.log'), `first\n${huge}\nsecond\n${huge}`);
    const { out } = await readOnce(opts([join(dir, 'a.log')], { max_line_bytes: 1000 }));
    expect(out.messages).toEqual(['first', 'z'.repeat(1000), 'second', 'z'.repeat(1000)]);
    expect(out.records.filter((r) => r.truncated === true)).toHaveLength(2);
    expect(originOf(out.records[2] as never)).toMatchObject({ offset: 6 + huge.length + 1, line: 3 });
    // Its end was not in the read buffer when it had to be cut: the size is what was read, a lower bound.
    expect(out.records[1]).toMatchObject({ line_bytes: READ_BUFFER_BYTES, line_bytes_at_least: true });
    expect(out.records[1]).toMatchObject({ max_line_bytes: 1000 });
  });

  it('keeps the bytes of a line that is not UTF-8 in message_base64, and only for such a line', async () => {
    const dir = workdir();
    const latin1 = Buffer.from('GET /caf\xe9 "Mozilla \xff"', 'latin1');
    const broken = Buffer.from([0x61, 0xe2, 0x82, 0x0d]); // `a`, half of `€`, then the CR of a CRLF ending
    writeFileSync(
      join(dir, 'a.log'),
      Buffer.concat([Buffer.from('ok é \uFFFD\n'), latin1, Buffer.from('\n'), broken, Buffer.from('\nlast')]),
    );
    const { out } = await readOnce(opts([join(dir, 'a.log')]));
    expect(out.messages).toEqual(['ok é \uFFFD', 'GET /caf\uFFFD "Mozilla \uFFFD"', 'a\uFFFD', 'last']);
    expect(out.records[0]).not.toHaveProperty('message_base64');
    expect(Buffer.from(out.records[1]?.message_base64 as string, 'base64')).toEqual(latin1);
    expect(Buffer.from(out.records[2]?.message_base64 as string, 'base64')).toEqual(broken.subarray(0, 3));
    expect(out.records[3]).not.toHaveProperty('message_base64');
  });

  it('gives a cut binary line its size in bytes as read and the setting that cut it', async () => {
    const dir = workdir();
    // 199 KB of bytes that are not text (no newline among them): decoded, each invalid byte is a 3-byte U+FFFD.
    const binary = Buffer.alloc(199 * 1024);
    for (let i = 0; i < binary.length; i++) binary[i] = 0x80 + ((i * 7) % 0x80);
    writeFileSync(join(dir, 'a.log'), Buffer.concat([binary, Buffer.from('\nnext\n')]));
    const { out } = await readOnce(opts([join(dir, 'a.log')]));
    expect(out.records[0]).toMatchObject({ truncated: true, line_bytes: 203776, max_line_bytes: 65536 });
    expect(out.records[0]).not.toHaveProperty('line_bytes_at_least');
    const kept = Buffer.from(out.records[0]?.message_base64 as string, 'base64');
    expect(kept.length).toBeGreaterThan(65536 - 4);
    expect(kept).toEqual(binary.subarray(0, kept.length));
    expect(out.messages[1]).toBe('next');
    expect(originOf(out.records[1] as never)).toMatchObject({ offset: 203777, line: 2 });
  });

  it('reports progress against the total size', async () => {
    const dir = workdir();
    writeFileSync(join(dir, 'a.log'), text(lines('p', 0, 3000)));
    const { out } = await readOnce(opts([join(dir, 'a.log')]), undefined, 500);
    const size = text(lines('p', 0, 3000)).length;
    expect(out.progressCalls[0]).toEqual({ done: 0, total: size });
    expect(out.progressCalls.at(-1)).toEqual({ done: size, total: size });
    expect(out.batches.reduce((n, b) => n + (b.bytes ?? 0), 0)).toBe(size);
  });

  it('logs a file it cannot read with its path and reads the others', async () => {
    const dir = workdir();
    writeFileSync(join(dir, 'a.log'), 'a1\n');
    // gzip magic, then garbage: decompression fails.
    writeFileSync(join(dir, 'b.log'), Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 1, 2]));
    writeFileSync(join(dir, 'c.log'), 'c1\n');
    const unreadable = join(dir, 'd.log');
    writeFileSync(unreadable, 'd1\n');
    chmodSync(unreadable, 0o000);
    const { out } = await readOnce(opts([join(dir, '*.log')]));
    const errors = out.inputErrors.map((e) => e.where?.file);
    expect(errors).toContain(join(dir, 'b.log'));
    if (process.getuid?.() !== 0) expect(errors).toContain(unreadable);
    expect(out.messages.filter((m) => m !== 'd1')).toEqual(['a1', 'c1']);
  });
});

describe('file source, checkpoints', () => {
  it('resumes exactly after the last emitted line, for every stop point (plain and gzip)', async () => {
    const dir = workdir();
    const plain = lines('plain', 0, 1200);
    const packed = lines('packed', 0, 900);
    writeFileSync(join(dir, 'a.log'), text(plain));
    writeFileSync(join(dir, 'b.log.gz'), gzipSync(text(packed)));
    const all = [...plain, ...packed];
    for (const stopAfter of [1, 2, 5, 9, 12, 13]) {
      const first = collectOutput({ stopAfterBatches: stopAfter });
      const source = createFileSource(opts([join(dir, '*')]), testContext({ batchMaxRecords: 170 }));
      await source.run(first);
      await source.close?.();
      const position = first.batches.at(-1)?.position;
      const second = await readOnce(opts([join(dir, '*')]), position, 170);
      expect([...first.messages, ...second.out.messages]).toEqual(all);
      // A third run from the final position emits nothing new.
      const third = await readOnce(opts([join(dir, '*')]), second.out.lastPosition, 170);
      expect(third.out.messages).toEqual([]);
    }
  });

  it('remembers fully read files and reads only what was appended since', async () => {
    const dir = workdir();
    const path = join(dir, 'a.log');
    writeFileSync(path, text(lines('a', 0, 10)));
    const first = await readOnce(opts([path]));
    const position = first.out.lastPosition as FilePosition;
    expect(position.files).toHaveLength(1);
    expect(position.files[0]).toMatchObject({ path, offset: text(lines('a', 0, 10)).length, line: 10 });
    appendFileSync(path, text(lines('a', 10, 13)));
    const second = await readOnce(opts([path]), position);
    expect(second.out.messages).toEqual(lines('a', 10, 13));
    expect(originOf(second.out.records[0] as never).line).toBe(11);
  });

  it('finds a file again after a rename, by its fingerprint', async () => {
    const dir = workdir();
    writeFileSync(join(dir, 'access.log'), text(lines('r', 0, 20)));
    const first = await readOnce(opts([join(dir, 'access.log*')]));
    renameSync(join(dir, 'access.log'), join(dir, 'access.log.1'));
    appendFileSync(join(dir, 'access.log.1'), text(lines('r', 20, 22)));
    writeFileSync(join(dir, 'access.log'), text(lines('new', 0, 2)));
    // Files are read oldest-modified first: the rotated one was written to before the new one.
    utimesSync(join(dir, 'access.log.1'), 1_000, 1_000);
    utimesSync(join(dir, 'access.log'), 2_000, 2_000);
    const second = await readOnce(opts([join(dir, 'access.log*')]), first.out.lastPosition);
    expect(second.out.messages).toEqual([...lines('r', 20, 22), ...lines('new', 0, 2)]);
  });

  it('gives a renamed file the same origin keys when it is read again (a replay after a rotation)', async () => {
    const dir = workdir();
    writeFileSync(join(dir, 'access.log'), text(lines('k', 0, 5)));
    const keys = (out: { records: readonly unknown[] }) => out.records.map((r) => originKey('p', originOf(r as never)));
    const first = await readOnce(opts([join(dir, 'access.log*')]));
    renameSync(join(dir, 'access.log'), join(dir, 'access.log.1'));
    writeFileSync(join(dir, 'access.log'), text(lines('k', 0, 5)));
    const replay = await readOnce(opts([join(dir, 'access.log.1')]));
    expect(originOf(replay.out.records[0] as never).file).toBe(join(dir, 'access.log.1'));
    expect(keys(replay.out)).toEqual(keys(first.out));
    // The same lines in another file under the old name are other records.
    const other = await readOnce(opts([join(dir, 'access.log')]));
    expect(keys(other.out).filter((k) => keys(first.out).includes(k))).toEqual([]);
  });

  it('knows a compressed copy of a file already read (rotated and gzipped)', async () => {
    const dir = workdir();
    const content = text(lines('z', 0, 50));
    writeFileSync(join(dir, 'access.log.1'), content);
    const first = await readOnce(opts([join(dir, 'access.log*')]));
    rmSync(join(dir, 'access.log.1'));
    writeFileSync(join(dir, 'access.log.1.gz'), gzipSync(content));
    const second = await readOnce(opts([join(dir, 'access.log*')]), first.out.lastPosition);
    expect(second.out.messages).toEqual([]);
  });

  it('reads a different file that reuses the path from its start', async () => {
    const dir = workdir();
    const path = join(dir, 'a.log');
    writeFileSync(path, text(lines('old', 0, 30)));
    const first = await readOnce(opts([path]));
    rmSync(path);
    // Longer than the old one, so no offset check alone could tell; the inode may well be reused.
    writeFileSync(path, text(lines('other', 0, 40)));
    const second = await readOnce(opts([path]), first.out.lastPosition);
    expect(second.out.messages).toEqual(lines('other', 0, 40));
  });
});

describe('file source, backpressure', () => {
  it('reads no further than one buffer ahead of what it emitted, and not while an emit is pending', async () => {
    const dir = workdir();
    const path = join(dir, 'big.log');
    writeFileSync(path, text(lines('bp', 0, 40000))); // about 2.4 MB
    let readBytes = 0;
    let pending = false;
    let readWhilePending = 0;
    let maxLead = 0;
    const out = collectOutput({
      delayMs: 2,
      stopAfterBatches: 30,
      onEmit: (batch) => {
        const entry = (batch.position as FilePosition).files[0];
        maxLead = Math.max(maxLead, readBytes - (entry?.offset ?? 0));
      },
    });
    const emit = out.emit.bind(out);
    out.emit = async (records, position, bytes) => {
      pending = true;
      try {
        return await emit(records, position, bytes);
      } finally {
        pending = false;
      }
    };
    const source = createFileSource(opts([path]), testContext({ batchMaxRecords: 100 }), {
      onRead: (_path, bytes) => {
        readBytes += bytes;
        if (pending) readWhilePending++;
      },
    });
    await source.run(out);
    await source.close?.();
    expect(out.batches).toHaveLength(30);
    expect(readWhilePending).toBe(0);
    expect(maxLead).toBeLessThanOrEqual(READ_BUFFER_BYTES);
    const lineBytes = (lines('bp', 0, 1)[0] as string).length + 1;
    expect(readBytes).toBeLessThanOrEqual(30 * 100 * lineBytes + READ_BUFFER_BYTES);
  });
});

describe('file source, following', () => {
  function follow(options: FileSourceOptions, restoredPosition?: unknown) {
    const ctx = testContext({ restoredPosition, batchMaxRecords: 1000 });
    let markTracked: () => void = () => {};
    /** Resolves once the source tracks a file (its start offset is set). */
    const tracked = new Promise<void>((resolve) => {
      markTracked = resolve;
    });
    const source = createFileSource(options, ctx, { onTracked: () => markTracked() });
    const out = collectOutput();
    const running = source.run(out);
    const stop = async (): Promise<void> => {
      out.controller.abort();
      await running;
      await source.close?.();
    };
    return { out, ctx, stop, tracked };
  }
  const atLeast = (n: number) => (out: { messages: string[] }) => out.messages.length >= n;

  it('reads appended lines soon, and files that appear later', async () => {
    const dir = workdir();
    writeFileSync(join(dir, 'a.log'), text(lines('a', 0, 3)));
    const { out, stop } = follow(opts([join(dir, '*.log')], { follow: true }));
    try {
      await out.until(atLeast(3));
      const appendedAt = Date.now();
      appendFileSync(join(dir, 'a.log'), text(lines('a', 3, 5)));
      await out.until(atLeast(5));
      expect(Date.now() - appendedAt).toBeLessThan(1000);
      writeFileSync(join(dir, 'b.log'), text(lines('b', 0, 2)));
      await out.until(atLeast(7));
      expect(out.messages).toEqual([...lines('a', 0, 5), ...lines('b', 0, 2)]);
    } finally {
      await stop();
    }
  });

  it('finishes a file renamed away through its descriptor before the new one, losing no line', async () => {
    const dir = workdir();
    const path = join(dir, 'access.log');
    writeFileSync(path, text(lines('old', 0, 100)));
    const { out, ctx, stop } = follow(opts([path], { follow: true }));
    try {
      await out.until(atLeast(100));
      appendFileSync(path, text(lines('old', 100, 110)));
      renameSync(path, join(dir, 'access.log.1'));
      // The writer has not reopened yet: it still appends to the renamed file.
      appendFileSync(join(dir, 'access.log.1'), text(lines('old', 110, 115)));
      writeFileSync(path, text(lines('new', 0, 20)));
      await out.until(atLeast(135));
      expect(out.messages).toEqual([...lines('old', 0, 115), ...lines('new', 0, 20)]);
      // Once quiet for rotate_wait_ms the old file is let go: positions name only the new one.
      await ctx.logged('rotated file finished');
      appendFileSync(path, text(lines('new', 20, 21)));
      await out.until(atLeast(136));
      const position = out.lastPosition as FilePosition;
      expect(position.files.map((f) => f.path)).toEqual([path]);
      expect(originOf(out.records[135] as never)).toMatchObject({ file: path, line: 21 });
    } finally {
      await stop();
    }
  });

  it('reads a file truncated in place (copytruncate) again from its start', async () => {
    const dir = workdir();
    const path = join(dir, 'a.log');
    writeFileSync(path, text(lines('before', 0, 50)));
    const { out, stop, ctx } = follow(opts([path], { follow: true }));
    try {
      await out.until(atLeast(50));
      truncateSync(path, 0);
      // Same first bytes as before, so only the size going below the offset tells.
      appendFileSync(path, text(lines('before', 0, 5)));
      await out.until(atLeast(55));
      expect(out.messages.slice(50)).toEqual(lines('before', 0, 5));
      truncateSync(path, 0);
      // Different first bytes, and quickly longer than the old offset: the fingerprint tells.
      appendFileSync(path, text(lines('after', 0, 60)));
      await out.until(atLeast(115));
      expect(out.messages.slice(55)).toEqual(lines('after', 0, 60));
      expect(originOf(out.records[50] as never)).toMatchObject({ offset: 0, line: 1 });
      expect(ctx.logs.some((l) => l.message.includes('truncated'))).toBe(true);
      // Each content gets keys of its own: sinks that de-duplicate on them (NATS, Elasticsearch) drop none.
      const keys = out.records.map((r) => originKey('p', originOf(r as never)));
      expect(new Set(keys).size).toBe(115);
      // A restart from the last position goes on with the latest content's keys.
      const position = out.lastPosition as FilePosition;
      expect(position.files.find((f) => !f.truncated)?.generation).toBe(2);
      appendFileSync(path, text(lines('after', 60, 61)));
      const again = await readOnce(opts([path]), position);
      expect(again.out.messages).toEqual(lines('after', 60, 61));
      expect(originOf(again.out.records[0] as never).input).toBe(originOf(out.records[114] as never).input);
    } finally {
      await stop();
    }
  });

  it('with start_at end, takes only what is written after the first start, from the line being written', async () => {
    const dir = workdir();
    const path = join(dir, 'a.log');
    writeFileSync(path, `${text(lines('seen', 0, 10))}half`);
    const first = follow(opts([path], { follow: true, start_at: 'end' }));
    let position: unknown;
    try {
      await first.tracked;
      appendFileSync(path, ' done\nnext\n');
      await first.out.until(atLeast(2));
      expect(first.out.messages).toEqual(['half done', 'next']);
      position = first.out.lastPosition;
    } finally {
      await first.stop();
    }
    // Lines written while stopped are read on the next start: the checkpoint wins over start_at.
    appendFileSync(path, 'while down\n');
    const second = follow(opts([path], { follow: true, start_at: 'end' }), position);
    try {
      await second.out.until(atLeast(1));
      expect(second.out.messages).toEqual(['while down']);
    } finally {
      await second.stop();
    }
  });

  it('emits a last line without newline once it has waited partial_line_timeout_ms', async () => {
    const dir = workdir();
    const path = join(dir, 'a.log');
    writeFileSync(path, 'complete\nwaiting');
    const { out, stop } = follow(opts([path], { follow: true, partial_line_timeout_ms: 200 }));
    try {
      await out.until(atLeast(1));
      expect(out.messages).toEqual(['complete']);
      await out.until(atLeast(2));
      expect(out.messages).toEqual(['complete', 'waiting']);
    } finally {
      await stop();
    }
  });

  it('measures a long line written in pieces whole: the cut waits for its newline', async () => {
    const dir = workdir();
    const path = join(dir, 'a.log');
    writeFileSync(path, `first\n${'a'.repeat(5000)}`);
    let read = 0;
    let sawHead: () => void = () => {};
    const head = new Promise<void>((resolve) => {
      sawHead = resolve;
    });
    const options = opts([path], { follow: true, max_line_bytes: 1000, partial_line_timeout_ms: 60_000 });
    const source = createFileSource(options, testContext({ batchMaxRecords: 1000 }), {
      onRead: (_path, bytes) => {
        read += bytes;
        if (read >= 5006) sawHead();
      },
    });
    const out = collectOutput();
    const running = source.run(out);
    try {
      await head;
      appendFileSync(path, `${'b'.repeat(3000)}\nnext\n`);
      await out.until(atLeast(3));
      expect(out.messages).toEqual(['first', 'a'.repeat(1000), 'next']);
      expect(out.records[1]).toMatchObject({ truncated: true, line_bytes: 8000, max_line_bytes: 1000 });
      expect(out.records[1]).not.toHaveProperty('line_bytes_at_least');
    } finally {
      out.controller.abort();
      await running;
      await source.close?.();
    }
  });

  it('cuts a long partial line when partial_line_timeout_ms passes, and skips what is appended to it', async () => {
    const dir = workdir();
    const path = join(dir, 'a.log');
    writeFileSync(path, 'x'.repeat(3000));
    const { out, stop } = follow(opts([path], { follow: true, max_line_bytes: 1000, partial_line_timeout_ms: 100 }));
    try {
      await out.until(atLeast(1));
      expect(out.records[0]).toMatchObject({ message: 'x'.repeat(1000), truncated: true, line_bytes: 3000 });
      appendFileSync(path, 'yyy\nnext\n');
      await out.until(atLeast(2));
      expect(out.messages).toEqual(['x'.repeat(1000), 'next']);
    } finally {
      await stop();
    }
  });

  it('stops promptly while following a large file, emitting nothing after the stop', async () => {
    const dir = workdir();
    const path = join(dir, 'big.log');
    writeFileSync(path, text(lines('big', 0, 40000))); // about 2.4 MB, nine read buffers
    let stopped = false;
    let readAfterStop = 0;
    const source = createFileSource(opts([path], { follow: true }), testContext(), {
      onRead: (_path, bytes) => {
        if (stopped) readAfterStop += bytes;
      },
    });
    // The output throws on an emit after the stop, which fails the run.
    const out = collectOutput();
    const running = source.run(out);
    await out.until(atLeast(1));
    stopped = true;
    out.controller.abort();
    await running;
    await source.close?.();
    // At most the read already under way when the stop came.
    expect(readAfterStop).toBeLessThanOrEqual(READ_BUFFER_BYTES);
  });
});
