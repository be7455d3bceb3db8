/**
 * The sftp source through its contract, against a real OpenSSH server started for these tests (test-sshd.ts):
 * new, grown and gzip files, resuming from a position, a wrong host key, a connection cut mid-file.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectOutput, originOf, testContext } from '../../../test/support/source-output.ts';
import { originKey } from '../../shared/origin-key.ts';
import SftpClient from 'ssh2-sftp-client';
import definition from './index.ts';
import { RemoteRangeReader } from './range-reader.ts';
import type { SftpSourceOptions } from './schema.ts';
import { createSftpSource } from './sftp.ts';
import { type Relay, type Sshd, sshdMissing, startRelay, startSshd } from './test-sshd.ts';

const ajv = new Ajv({ useDefaults: true, strict: false });
const validateOptions = ajv.compile(definition.schema);

const missing = sshdMissing();

function randomHex(): string {
  return randomBytes(24).toString('hex');
}

function lines(prefix: string, count: number, from = 0): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix} line ${from + i}`);
}

describe('sftp source definition', () => {
  const problems = (patch: Record<string, unknown>) => {
    const value = { host: 'h', username: 'u', directory: 'd', private_key_path: 'k', ...patch };
    if (!validateOptions(value)) throw new Error(ajv.errorsText(validateOptions.errors));
    return (definition.validate?.(value as SftpSourceOptions, { inputSchema: undefined }) ?? []).map(
      (p) => `${p.severity ?? 'error'}: ${p.message}`,
    );
  };

  it('checks the host key unless told explicitly not to, and needs a way to log in', () => {
    expect(problems({})).toEqual([
      "error: host_key_fingerprint is required: the server's host key is checked before logging in",
    ]);
    expect(problems({ insecure_accept_any_host_key: true })).toEqual([
      "warning: the server's host key is not checked: anyone answering at the host's address receives the login",
    ]);
    const fingerprint = 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s';
    expect(problems({ host_key_fingerprint: fingerprint })).toEqual([]);
    expect(problems({ host_key_fingerprint: fingerprint, private_key_path: undefined })).toEqual([
      'error: no way to log in: give private_key_path, private_key or password',
    ]);
    expect(() => problems({ host_key_fingerprint: 'uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s' })).toThrow(
      'must match pattern',
    );
  });
});

describe('sftp source position', () => {
  const opts = {
    host: 'h',
    username: 'u',
    directory: 'd',
    private_key_path: 'k',
    insecure_accept_any_host_key: true,
  };
  it('refuses, before any connection, a checkpoint position that is not one of its own', () => {
    if (!validateOptions(opts)) throw new Error(ajv.errorsText(validateOptions.errors));
    const create = (restoredPosition: unknown) =>
      createSftpSource(opts as SftpSourceOptions, testContext({ restoredPosition }));
    expect(() => create({ files: [] })).toThrow(
      'the checkpoint\'s position for source src is not a position of the sftp source: {"files":[]} has no list of inputs',
    );
    expect(() => create({ inputs: [{ path: '/a', size: -1, mtime_ms: 0, offset: 0, line: 0 }] })).toThrow(
      'is not a remote input',
    );
    const entry = { path: '/a', size: 10, mtime_ms: 1, offset: 4, line: 1, complete: true };
    expect(() => create({ inputs: [entry] })).not.toThrow();
  });
});

describe.skipIf(missing !== undefined)(`sftp source against OpenSSH${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let sshd: Sshd;
  let dirs = 0;

  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(async () => {
    await sshd?.stop();
  });

  /** A fresh remote directory (on this machine: the server's file system). */
  function remoteDir(): string {
    const dir = join(sshd.root, `d${dirs++}`);
    mkdirSync(dir);
    return dir;
  }

  function options(directory: string, patch: Partial<SftpSourceOptions> = {}): SftpSourceOptions {
    const value = {
      host: '127.0.0.1',
      port: sshd.port,
      username: sshd.user,
      private_key_path: sshd.userKeyPath,
      host_key_fingerprint: sshd.hostFingerprint,
      directory,
      ...patch,
    };
    if (!validateOptions(value)) throw new Error(ajv.errorsText(validateOptions.errors));
    return value as SftpSourceOptions;
  }

  async function readOnce(opts: SftpSourceOptions, restoredPosition?: unknown, batchMaxRecords = 1000) {
    const source = createSftpSource(opts, testContext({ restoredPosition, batchMaxRecords }));
    const out = collectOutput();
    try {
      await source.run(out);
    } finally {
      await source.close?.();
    }
    return out;
  }

  it('reads new files whole, then only the lines a plain file grew by, and gzip files once', async () => {
    const dir = remoteDir();
    writeFileSync(join(dir, 'access.log'), `${lines('plain', 3).join('\n')}\n`);
    writeFileSync(join(dir, 'access.log.1.gz'), gzipSync(`${lines('gz', 2).join('\n')}\n`));
    writeFileSync(join(dir, 'notes.txt'), 'not matched\n');
    const opts = options(dir, { pattern: 'access.log*' });
    const first = await readOnce(opts);
    expect([...first.messages].sort()).toEqual([...lines('gz', 2), ...lines('plain', 3)].sort());
    expect(first.inputErrors).toEqual([]);
    const plain = first.records.find((r) => r.message === 'plain line 1');
    const plainPath = join(dir, 'access.log');
    expect(originOf(plain ?? {})).toEqual({ source: 'src', file: plainPath, input: plainPath, offset: 13, line: 2 });
    const gz = first.records.find((r) => r.message === 'gz line 1');
    expect(originOf(gz ?? {})).toMatchObject({ file: join(dir, 'access.log.1.gz'), offset: 10, line: 2 });

    appendFileSync(join(dir, 'access.log'), `${lines('plain', 2, 3).join('\n')}\npartial`);
    const second = await readOnce(opts, first.lastPosition);
    // Only the new lines; at the end of a finite run the last line is taken without its newline.
    expect(second.messages).toEqual([...lines('plain', 2, 3), 'partial']);
    expect(originOf(second.records[0] ?? {})).toMatchObject({ offset: 39, line: 4 });

    const third = await readOnce(opts, second.lastPosition);
    expect(third.messages).toEqual([]);
    expect(third.batches).toEqual([]);

    // A position written before files had fingerprints: read on from it, and given them.
    type Entry = { path: string; fingerprint?: string; fingerprint_bytes?: number; input?: string };
    const older = {
      inputs: (second.lastPosition as { inputs: Entry[] }).inputs.map(
        ({ fingerprint: _f, fingerprint_bytes: _b, input: _i, ...rest }) => rest,
      ),
    };
    appendFileSync(join(dir, 'access.log'), '\nlast\n');
    const fourth = await readOnce(opts, older);
    expect(fourth.messages).toEqual(['', 'last']);
    const upgraded = (fourth.lastPosition as { inputs: Entry[] }).inputs.find((e) => e.path === plainPath);
    expect(upgraded?.fingerprint).toMatch(/^[0-9a-f]{32}$/);
  });

  /** Lines long enough that a few of them fill the fingerprint (a rename is known by the first KiB). */
  const long = (prefix: string, count: number, from = 0): string =>
    lines(`${prefix} ${'x'.repeat(100)}`, count, from)
      .map((l) => `${l}\n`)
      .join('');
  const keysOf = (out: { records: readonly Record<string, unknown>[] }) =>
    out.records.map((r) => originKey('p', originOf(r)));

  it('follows a rotation by rename (and the compression after it): no line twice, none lost, keys apart', async () => {
    const dir = remoteDir();
    const live = join(dir, 'access.log');
    writeFileSync(live, long('one', 20));
    const opts = options(dir, { pattern: 'access.log*' });
    const first = await readOnce(opts);
    expect(first.messages).toHaveLength(20);
    // Lines written just before the rotation, then rotated away; the new file gets lines of its own.
    appendFileSync(live, long('one', 2, 20));
    renameSync(live, join(dir, 'access.log.1'));
    writeFileSync(live, long('two', 5));
    const second = await readOnce(opts, first.lastPosition);
    expect([...second.messages].sort()).toEqual(
      [...long('one', 2, 20).split('\n'), ...long('two', 5).split('\n')].filter(Boolean).sort(),
    );
    // The rotated file is compressed by the next rotation: it is the same content, nothing is read again.
    writeFileSync(join(dir, 'access.log.2.gz'), gzipSync(readFileSync(join(dir, 'access.log.1'))));
    rmSync(join(dir, 'access.log.1'));
    const third = await readOnce(opts, second.lastPosition);
    expect(third.messages).toEqual([]);
    // The two contents that were read under one name have keys apart.
    const keys = [...keysOf(first), ...keysOf(second)];
    expect(new Set(keys).size).toBe(27);
    expect(originOf(second.records.find((r) => String(r.message).startsWith('two')) ?? {}).input).toBe(`${live}~1`);
  });

  it('reads again a file rewritten under its name to the same size, and continues a copytruncate copy', async () => {
    const dir = remoteDir();
    const live = join(dir, 'access.log');
    writeFileSync(live, long('old', 20));
    utimesSync(live, 1_700_000_000, 1_700_000_000);
    const opts = options(dir, { pattern: 'access.log*' });
    const first = await readOnce(opts);
    // Same size, other bytes, another modification time.
    writeFileSync(live, long('new', 20));
    utimesSync(live, 1_700_000_100, 1_700_000_100);
    const second = await readOnce(opts, first.lastPosition);
    expect(second.messages).toEqual(long('new', 20).split('\n').filter(Boolean));
    expect(new Set([...keysOf(first), ...keysOf(second)]).size).toBe(40);
    // copytruncate: the copy holds two lines not read yet; the truncated file gets new ones.
    appendFileSync(live, long('new', 2, 20));
    writeFileSync(join(dir, 'access.log.1'), readFileSync(live));
    writeFileSync(live, long('after', 3));
    const third = await readOnce(opts, second.lastPosition);
    expect([...third.messages].sort()).toEqual(
      [...long('new', 2, 20).split('\n'), ...long('after', 3).split('\n')].filter(Boolean).sort(),
    );
  });

  it('resumes a file after the last batch emitted when a run stopped in its middle', async () => {
    const dir = remoteDir();
    const all = [...lines('a', 250)];
    writeFileSync(join(dir, 'a.log'), `${all.join('\n')}\n`);
    writeFileSync(join(dir, 'b.log.gz'), gzipSync(`${lines('b', 250).join('\n')}\n`));
    const opts = options(dir);
    const source = createSftpSource(opts, testContext({ batchMaxRecords: 100 }));
    // Batches end with each file: 100, 100 and 50 lines of a.log, then the first 100 of b.log.gz.
    const stopped = collectOutput({ stopAfterBatches: 4 });
    await source.run(stopped);
    await source.close?.();
    expect(stopped.messages).toHaveLength(350);
    const rest = await readOnce(opts, stopped.lastPosition, 100);
    const everything = [...stopped.messages, ...rest.messages];
    expect(everything.sort()).toEqual([...all, ...lines('b', 250)].sort());
  });

  it('follows the directory: picks up new files and appended lines on each poll', async () => {
    const dir = remoteDir();
    writeFileSync(join(dir, 'one.log'), 'first\n');
    const source = createSftpSource(
      options(dir, { follow: true, poll_interval_seconds: 0.1 }),
      testContext({ batchMaxRecords: 100 }),
    );
    const out = collectOutput();
    const running = source.run(out);
    await out.until((o) => o.messages.length === 1);
    appendFileSync(join(dir, 'one.log'), 'second\nhalf');
    writeFileSync(join(dir, 'two.log.gz'), gzipSync('zipped\n'));
    await out.until((o) => o.messages.length === 3);
    // A line still being written waits for its newline.
    appendFileSync(join(dir, 'one.log'), ' done\n');
    await out.until((o) => o.messages.length === 4);
    out.controller.abort();
    await running;
    await source.close?.();
    expect(out.messages.slice(0, 1)).toEqual(['first']);
    expect(out.messages.slice(1, 3).sort()).toEqual(['second', 'zipped']);
    expect(out.messages[3]).toBe('half done');
  });

  it('refuses a server whose host key is not the expected one, at once and saying which key it saw', async () => {
    const dir = remoteDir();
    writeFileSync(join(dir, 'a.log'), 'secret\n');
    const wrong = 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s';
    const started = Date.now();
    const failure = readOnce(options(dir, { host_key_fingerprint: wrong }));
    await expect(failure).rejects.toThrow(
      `the SFTP server at 127.0.0.1:${sshd.port} shows host key ${sshd.hostFingerprint}, not the host_key_fingerprint ${wrong}`,
    );
    // Not retried: a refusal is final (the retrier's first backoff alone is 0.5 s at most; this is one handshake).
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('refuses a login the server refuses, at once and naming the user', async () => {
    // The host key is a valid key the server does not accept for logins.
    const opts = options(remoteDir(), { private_key_path: join(sshd.userKeyPath, '..', 'host_key') });
    await expect(readOnce(opts)).rejects.toThrow(
      `the SFTP server at 127.0.0.1:${sshd.port} refused the login of ${sshd.user}: All configured authentication methods failed`,
    );
  });

  it('reports a corrupt gzip file as an input error and reads the other files', async () => {
    const dir = remoteDir();
    const zipped = gzipSync(`${lines('z', 2000).join('\n')}\n`);
    // Damage in the middle of the deflate data (after the 10-byte header, before the trailer).
    zipped.fill(0xff, Math.floor(zipped.length / 2), Math.floor(zipped.length / 2) + 16);
    writeFileSync(join(dir, 'a.log.gz'), zipped);
    writeFileSync(join(dir, 'b.log'), 'fine\n');
    const first = await readOnce(options(dir));
    expect(first.inputErrors).toHaveLength(1);
    expect(first.inputErrors[0]?.reason).toMatch(/^gzip data is corrupt: .*; the lines before that point were emitted/);
    expect(first.inputErrors[0]?.where).toMatchObject({ file: join(dir, 'a.log.gz') });
    expect(first.messages).toContain('fine');
    // Not read again while it stays as it is.
    const second = await readOnce(options(dir), first.lastPosition);
    expect(second.inputErrors).toEqual([]);
    expect(second.messages).toEqual([]);
  });

  it('reads byte ranges with requests in flight, in order, ending early where the file ends', async () => {
    const dir = remoteDir();
    const content = randomBytes(700 * 1024);
    writeFileSync(join(dir, 'blob'), content);
    const client = new SftpClient();
    const sftp = await client.connect({
      host: '127.0.0.1',
      port: sshd.port,
      username: sshd.user,
      privateKey: readFileSync(sshd.userKeyPath),
    });
    const read = async (start: number, end: number) => {
      const chunks: Buffer[] = [];
      for await (const chunk of new RemoteRangeReader(sftp, join(dir, 'blob'), start, end)) chunks.push(chunk);
      return Buffer.concat(chunks);
    };
    try {
      expect((await read(0, content.length)).equals(content)).toBe(true);
      expect((await read(1000, 300_000)).equals(content.subarray(1000, 300_000))).toBe(true);
      // A range past the end (the file shrank since it was listed) ends with the file.
      expect((await read(650_000, 2_000_000)).equals(content.subarray(650_000))).toBe(true);
      expect((await read(5, 5)).length).toBe(0);
    } finally {
      await client.end();
    }
  });

  it('says when the directory does not exist', async () => {
    await expect(readOnce(options(join(sshd.root, 'no-such-dir')))).rejects.toThrow(
      `cannot list directory ${join(sshd.root, 'no-such-dir')} on the SFTP server`,
    );
  });

  it('reconnects when the connection is lost in the middle of a file, and reads every line once', async () => {
    const dir = remoteDir();
    // Random payloads, so that neither file (the gzip one included, about 2 MB) arrives whole before the cut: the
    // source has 1 MiB of reads in flight.
    const noisy = (prefix: string, count: number) => lines(prefix, count).map((l) => `${l} ${randomHex()}`);
    const all = noisy('x', 40000);
    const zipped = noisy('z', 60000);
    writeFileSync(join(dir, 'big.log'), `${all.join('\n')}\n`);
    writeFileSync(join(dir, 'big.log.gz'), gzipSync(`${zipped.join('\n')}\n`));
    let relay: Relay | undefined;
    relay = await startRelay(sshd.port);
    try {
      const ctx = testContext({ batchMaxRecords: 200 });
      const source = createSftpSource(options(dir, { port: relay.port }), ctx);
      let cuts = 0;
      const out = collectOutput({
        // Cut the network under each file once, after its first batch (the read of the rest is in flight).
        onEmit: (batch) => {
          const file = batch.records[0] ? originOf(batch.records[0]).file : undefined;
          const first = batch.records[0] ? originOf(batch.records[0]).line === 1 : false;
          if (file && first) {
            cuts++;
            relay?.cut();
          }
        },
      });
      await source.run(out);
      await source.close?.();
      expect(cuts).toBe(2);
      // A cut interrupts only reads still under way: on a loaded machine the reads of a file (1 MiB in flight) can
      // all be done before its first batch is emitted, and that cut then has nothing to interrupt. The first file's
      // is under way in practice; each cut that interrupted is a reconnection, on a connection of its own.
      const reconnections = ctx.logs.filter((l) => l.message.includes('failed; reconnecting')).length;
      expect(reconnections).toBeGreaterThanOrEqual(1);
      expect(relay.connections).toBeGreaterThanOrEqual(1 + reconnections);
      expect(out.messages.filter((m) => m.startsWith('x'))).toEqual(all);
      expect(out.messages.filter((m) => m.startsWith('z'))).toEqual(zipped);
    } finally {
      await relay.close();
    }
  });

  it('gives up after max_attempts when the server cannot be reached', async () => {
    const relay = await startRelay(sshd.port);
    const port = relay.port;
    await relay.close();
    await expect(readOnce(options(remoteDir(), { port, max_attempts: 2 }))).rejects.toThrow(
      'gave up after 2 attempts: cannot connect to the SFTP server',
    );
  });
});
