/**
 * What checking a compressed file before reading it costs. The file source decompresses a .gz once to check
 * every member's CRC (keeping nothing), then again to read its lines. In one process, alternating, best of
 * three: the check alone, a whole read by the file source (check included), and a plain gunzip pass.
 * Usage: node bench/file-gzip.ts [--records 1000000]
 */
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, gzipSync } from 'node:zlib';
import type { SourceOutput } from '../engine/operator.ts';
import { createFileSource } from '../operators/sources/file/file.ts';
import { checkGzip } from '../operators/shared/line-reader/chunks.ts';
import { createLineMaker } from '../operators/sources/generator/lines.ts';
import { recordingContext } from '../test/support/context.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const total = Number(arg('records') ?? 1_000_000);
const dir = mkdtempSync(join(tmpdir(), 'etl-bench-gzip-'));
const plain = join(dir, 'access.log');
const maker = createLineMaker({ format: 'nginx_combined', seed: 1 });
const fd = openSync(plain, 'w');
for (let i = 0; i < total; ) {
  let chunk = '';
  for (const end = Math.min(total, i + 10_000); i < end; i++) chunk += `${maker.next()}\n`;
  writeSync(fd, chunk);
}
closeSync(fd);
const packed = join(dir, 'access.log.gz');
const content = readFileSync(plain);
writeFileSync(packed, gzipSync(content));
// The same lines in 8 compressed files: the next file's check overlaps the reading of the current one.
const parts = join(dir, 'parts');
mkdirSync(parts);
for (let part = 0, start = 0; part < 8; part++) {
  const end = part === 7 ? content.length : content.indexOf(0x0a, Math.floor(((part + 1) * content.length) / 8)) + 1;
  writeFileSync(join(parts, `access.log.${part}.gz`), gzipSync(content.subarray(start, end)));
  start = end;
}

async function timed(run: () => Promise<void>): Promise<number> {
  const started = process.hrtime.bigint();
  await run();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

const never = new AbortController().signal;
async function checkOnly(): Promise<void> {
  const handle = await open(packed, 'r');
  try {
    const check = await checkGzip(handle, never);
    if (!check.ok) throw new Error(check.detail);
  } finally {
    await handle.close();
  }
}

async function gunzipOnly(): Promise<void> {
  const handle = await open(packed, 'r');
  try {
    const sink = new Writable({ write: (_chunk, _encoding, done) => done() });
    await pipeline(handle.createReadStream({ highWaterMark: 256 * 1024 }), createGunzip(), sink);
  } finally {
    await handle.close();
  }
}

async function readBySource(path: string): Promise<void> {
  let records = 0;
  const controller = new AbortController();
  const out: SourceOutput = {
    stopping: controller.signal,
    emit: async (batch) => {
      records += batch.length;
      return { sent: true, durable: () => Promise.resolve() };
    },
    onCommitted: () => {},
    progress: () => {},
    inputError: (reason) => {
      throw new Error(reason);
    },
  };
  const ctx = { ...recordingContext({ id: 'bench' }), restoredPosition: undefined, batchMaxRecords: 1024 };
  const source = createFileSource(
    {
      paths: [path],
      exclude: [],
      follow: false,
      start_at: 'beginning',
      poll_interval_ms: 250,
      max_line_bytes: 65536,
      partial_line_timeout_ms: 5000,
      rotate_wait_ms: 5000,
      max_open_files: 256,
      fingerprint_bytes: 256,
    },
    ctx,
  );
  await source.run(out);
  await source.close?.();
  if (records !== total) throw new Error(`read ${records} of ${total} records`);
}

const best = { check: Infinity, gunzip: Infinity, gz: Infinity, parts: Infinity, plain: Infinity };
for (let round = 0; round < 3; round++) {
  best.check = Math.min(best.check, await timed(checkOnly));
  best.gunzip = Math.min(best.gunzip, await timed(gunzipOnly));
  best.gz = Math.min(best.gz, await timed(() => readBySource(packed)));
  best.parts = Math.min(best.parts, await timed(() => readBySource(join(parts, '*.gz'))));
  best.plain = Math.min(best.plain, await timed(() => readBySource(plain)));
}
const rate = (s: number): string => `${Math.round(total / s).toLocaleString('en-US')} lines/s`;
console.log(`${total.toLocaleString('en-US')} lines, best of 3, same process:`);
console.log(`  plain file read by the source:  ${best.plain.toFixed(3)} s (${rate(best.plain)})`);
console.log(`  .gz read by the source:         ${best.gz.toFixed(3)} s (${rate(best.gz)}), check included`);
console.log(`  8 .gz read by the source:       ${best.parts.toFixed(3)} s (${rate(best.parts)}), checks included`);
console.log(`  .gz check alone:                ${best.check.toFixed(3)} s`);
console.log(`  .gz gunzip alone (reference):   ${best.gunzip.toFixed(3)} s`);
rmSync(dir, { recursive: true, force: true });
