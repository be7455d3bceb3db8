/**
 * Broken compressed files. gzip's CRC is only known at the end of a member, so no line of a compressed file is
 * emitted before the whole file decompressed and checked: a corrupt or cut file emits nothing, is reported as an
 * input error (summary, exit code, metric) and keeps its position, so that a rerun reads it once it is whole.
 * In follow mode a cut file is taken for one still being written, and read once complete.
 */
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { runApply } from '../../../engine/cli/commands/apply.ts';
import { createFileSource } from './file.ts';
import type { FileSourceOptions } from './schema.ts';
import { collectOutput, testContext, scratchDirs, sourceOptions } from './test-support.ts';

const workdir = scratchDirs('gzip');

const opts = sourceOptions;

/** Access-log-like lines whose text is checkable: `<prefix> <i> <i * 7>`. */
function lines(prefix: string, from: number, to: number): string[] {
  const out: string[] = [];
  for (let i = from; i < to; i++) out.push(`${prefix} ${i} ${i * 7} GET /item/${i} HTTP/1.1 200 ${'y'.repeat(30)}`);
  return out;
}
const text = (ls: string[]): string => ls.map((l) => `${l}\n`).join('');

/** gzip of `content` with bytes flipped in the middle of the deflate stream. */
function corrupted(content: string): Buffer {
  const packed = Buffer.from(gzipSync(content));
  const mid = Math.floor(packed.length / 2);
  for (let i = mid; i < mid + 4; i++) packed[i] = (packed[i] as number) ^ 0x5a;
  return packed;
}

async function readOnce(options: FileSourceOptions, restoredPosition?: unknown) {
  const ctx = testContext({ restoredPosition });
  const source = createFileSource(options, ctx);
  const out = collectOutput();
  await source.run(out);
  await source.close?.();
  return { out, ctx };
}

describe('file source, broken compressed files', () => {
  it('emits no line of a corrupt file, reports it as an input error, and reads the others', async () => {
    const dir = workdir();
    const good = lines('good', 0, 100);
    writeFileSync(join(dir, 'a.log'), text(good));
    writeFileSync(join(dir, 'b.log.gz'), corrupted(text(lines('b', 0, 20_000))));
    writeFileSync(join(dir, 'c.log'), text(lines('c', 0, 10)));
    const { out } = await readOnce(opts([join(dir, '*')]));
    expect(out.messages).toEqual([...good, ...lines('c', 0, 10)]);
    expect(out.inputErrors).toHaveLength(1);
    expect(out.inputErrors[0]?.where?.file).toBe(join(dir, 'b.log.gz'));
    expect(out.inputErrors[0]?.reason).toMatch(/corrupt.*none of its lines/s);
  });

  it('emits no line of a file cut short, and reports it', async () => {
    const dir = workdir();
    const packed = gzipSync(text(lines('cut', 0, 20_000)));
    writeFileSync(join(dir, 'a.log.gz'), packed.subarray(0, Math.floor(packed.length * 0.6)));
    const { out } = await readOnce(opts([join(dir, '*')]));
    expect(out.messages).toEqual([]);
    expect(out.inputErrors).toHaveLength(1);
    expect(out.inputErrors[0]?.reason).toMatch(/ends in the middle/);
  });

  it('emits nothing of a multi-member file whose second member is corrupt', async () => {
    const dir = workdir();
    const first = gzipSync(text(lines('m1', 0, 1000)));
    writeFileSync(join(dir, 'a.log.gz'), Buffer.concat([first, corrupted(text(lines('m2', 0, 5000)))]));
    const { out } = await readOnce(opts([join(dir, '*')]));
    expect(out.messages).toEqual([]);
    expect(out.inputErrors).toHaveLength(1);
  });

  it('keeps the position of a broken file, so a rerun reads it whole once it was replaced by a good copy', async () => {
    const dir = workdir();
    const content = text(lines('fix', 0, 3000));
    const path = join(dir, 'a.log.gz');
    writeFileSync(path, corrupted(content));
    const first = await readOnce(opts([path]));
    expect(first.out.messages).toEqual([]);
    writeFileSync(path, gzipSync(content));
    const second = await readOnce(opts([path]), first.out.lastPosition);
    expect(second.out.messages).toEqual(lines('fix', 0, 3000));
    expect(second.out.inputErrors).toEqual([]);
    const third = await readOnce(opts([path]), second.out.lastPosition);
    expect(third.out.messages).toEqual([]);
  });

  it('in follow mode, reads a compressed file being written once it is complete, not as an error', async () => {
    const dir = workdir();
    const content = lines('w', 0, 20_000);
    const packed = gzipSync(text(content));
    const path = join(dir, 'a.log.1.gz');
    writeFileSync(path, packed.subarray(0, Math.floor(packed.length / 2)));
    const ctx = testContext({ batchMaxRecords: 1000 });
    let tracked: () => void = () => {};
    const seen = new Promise<void>((resolve) => {
      tracked = resolve;
    });
    const source = createFileSource(opts([join(dir, '*')], { follow: true }), ctx, { onTracked: () => tracked() });
    const out = collectOutput();
    const running = source.run(out);
    try {
      await seen;
      appendFileSync(path, packed.subarray(Math.floor(packed.length / 2)));
      await out.until((o) => o.messages.length >= content.length);
      expect(out.messages).toEqual(content);
      expect(out.inputErrors).toEqual([]);
    } finally {
      out.controller.abort();
      await running;
      await source.close?.();
    }
  });

  it('etl apply: a corrupt file is an error in the summary and the exit code, the other files are delivered', async () => {
    const dir = workdir();
    mkdirSync(join(dir, 'logs'));
    writeFileSync(join(dir, 'logs', 'a.log'), text(lines('a', 0, 50)));
    writeFileSync(join(dir, 'logs', 'b.log.gz'), corrupted(text(lines('b', 0, 20_000))));
    const output = join(dir, 'out.jsonl');
    const file = join(dir, 'p.yaml');
    writeFileSync(
      file,
      `apiVersion: etl/v1
kind: Pipeline
metadata: { name: broken-gzip }
spec:
  settings: { data_dir: ${join(dir, '.etl')} }
  sources:
    logs: { type: file, paths: ["${join(dir, 'logs', '*')}"] }
  sinks:
    out: { type: file, inputs: [logs], path: ${output} }
`,
    );
    const err = new PassThrough();
    let errText = '';
    err.setEncoding('utf8').on('data', (chunk: string) => {
      errText += chunk;
    });
    const code = await runApply([file], {
      dryRun: false,
      progress: false,
      logLevel: 'warn',
      logFormat: 'pretty',
      out: new PassThrough() as unknown as NodeJS.WriteStream,
      err: err as unknown as NodeJS.WriteStream,
    });
    expect(code).toBe(1);
    expect(errText).toMatch(/errors\s+1\n/);
    expect(errText).toMatch(/outcome\s+completed, but 1 input could not be read completely/);
    expect(errText).toContain('b.log.gz');
    const written = readFileSync(output, 'utf8').trim().split('\n');
    expect(written).toHaveLength(50);
  });
});
