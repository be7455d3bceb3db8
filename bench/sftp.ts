/**
 * How fast the sftp source reads over a real OpenSSH server on this machine (loopback, so the figures are the
 * client's and sshd's CPU, not a network's): a plain file and the same lines gzip-compressed, each read whole
 * by the source alone (no runtime, an output that only counts), best of `--rounds`; then the grown tail of the
 * plain file (a tenth appended) read from the position of the first read. Peak RSS of this process at the end.
 * Needs /usr/sbin/sshd (Debian package openssh-server).
 * Usage: node bench/sftp.ts [--lines 200000] [--rounds 3]
 */
import { appendFileSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { SourceOutput } from '../engine/operator.ts';
import { createLineMaker } from '../operators/sources/generator/lines.ts';
import { createSftpSource } from '../operators/sources/sftp/sftp.ts';
import type { SftpSourceOptions } from '../operators/sources/sftp/schema.ts';
import { sshdMissing, startSshd } from '../operators/sources/sftp/test-sshd.ts';
import { recordingContext } from '../test/support/context.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const total = Number(arg('lines') ?? 200_000);
const rounds = Number(arg('rounds') ?? 3);

const missing = sshdMissing();
if (missing) {
  console.error(`cannot run: ${missing}`);
  process.exit(2);
}
const sshd = await startSshd();
const maker = createLineMaker({ format: 'nginx_combined', seed: 1 });
const text = (count: number): string => {
  let out = '';
  for (let i = 0; i < count; i++) out += `${maker.next()}\n`;
  return out;
};
const plainDir = join(sshd.root, 'plain');
const gzipDir = join(sshd.root, 'gzip');
mkdirSync(plainDir);
mkdirSync(gzipDir);
const content = text(total);
writeFileSync(join(plainDir, 'access.log'), content);
writeFileSync(join(gzipDir, 'access.log.gz'), gzipSync(content));

function options(directory: string): SftpSourceOptions {
  return {
    host: '127.0.0.1',
    port: sshd.port,
    username: sshd.user,
    private_key_path: sshd.userKeyPath,
    host_key_fingerprint: sshd.hostFingerprint,
    insecure_accept_any_host_key: false,
    directory,
    pattern: '*',
    follow: false,
    poll_interval_seconds: 10,
    max_line_bytes: 65536,
    connect_timeout_seconds: 20,
    max_attempts: 1,
  };
}

/** Reads the directory once; lines, seconds from the start of `run` (the connection included), the last position. */
async function readOnce(directory: string, restoredPosition?: unknown) {
  const ctx = { ...recordingContext({ id: 'bench' }), restoredPosition, batchMaxRecords: 1000 };
  const source = createSftpSource(options(directory), ctx);
  let lines = 0;
  let position: unknown;
  const out: SourceOutput = {
    stopping: new AbortController().signal,
    emit: async (records, at) => {
      lines += records.length;
      position = at;
      return { sent: true, durable: () => Promise.resolve() };
    },
    progress: () => {},
    onCommitted: () => {},
    inputError: (reason) => {
      throw new Error(reason);
    },
  };
  const started = performance.now();
  await source.run(out);
  const seconds = (performance.now() - started) / 1000;
  await source.close?.();
  return { lines, seconds, position };
}

const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
try {
  for (const [name, directory, file] of [
    ['plain', plainDir, 'access.log'],
    ['gzip', gzipDir, 'access.log.gz'],
  ] as const) {
    let best = Number.POSITIVE_INFINITY;
    for (let round = 0; round < rounds; round++) {
      const { lines, seconds } = await readOnce(directory);
      if (lines !== total) throw new Error(`${name}: read ${lines} lines, expected ${total}`);
      best = Math.min(best, seconds);
    }
    const size = statSync(join(directory, file)).size;
    console.log(
      `${name.padEnd(6)} ${total} lines, ${mib(size)} MiB on the wire: best ${best.toFixed(2)} s = ` +
        `${Math.round(total / best).toLocaleString('en')} lines/s, ${mib(size / best)} MiB/s`,
    );
  }
  const first = await readOnce(plainDir);
  const grown = Math.round(total / 10);
  appendFileSync(join(plainDir, 'access.log'), text(grown));
  const tail = await readOnce(plainDir, first.position);
  if (tail.lines !== grown) throw new Error(`tail: read ${tail.lines} lines, expected ${grown}`);
  console.log(`tail   ${grown} appended lines read from the position: ${tail.seconds.toFixed(2)} s`);
  console.log(`peak RSS of the bench process: ${mib(process.resourceUsage().maxRSS * 1024)} MiB`);
} finally {
  await sshd.stop();
}
