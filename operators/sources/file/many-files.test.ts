/**
 * Following many files: directory notifications say what changed, so idle files are not looked at; only
 * recently active files keep a descriptor (at most max_open_files), the others are reopened by path, their
 * identity checked, and one renamed while it had none is found under its new name.
 */
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createFileSource } from './file.ts';
import type { FileSourceOptions } from './schema.ts';
import { type CollectingOutput, collectOutput, testContext } from './test-support.ts';

const root = mkdtempSync(join(tmpdir(), 'etl-file-many-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let dirs = 0;
function workdir(): string {
  const dir = join(root, `t${dirs++}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

function opts(paths: string[], extra: Partial<FileSourceOptions> = {}): FileSourceOptions {
  return {
    paths,
    exclude: [],
    follow: true,
    start_at: 'beginning',
    poll_interval_ms: 20,
    max_line_bytes: 65536,
    partial_line_timeout_ms: 300,
    rotate_wait_ms: 150,
    max_open_files: 16,
    fingerprint_bytes: 256,
    ...extra,
  };
}

const name = (dir: string, i: number): string => join(dir, `f${String(i).padStart(4, '0')}.log`);
const line = (i: number, n: number): string => `file ${String(i).padStart(4, '0')} line ${n} ${'x'.repeat(60)}`;
const openDescriptors = (): number => readdirSync('/proc/self/fd').length;

function manyFiles(count: number): string {
  const dir = workdir();
  for (let i = 0; i < count; i++) writeFileSync(name(dir, i), `${line(i, 0)}\n${line(i, 1)}\n`);
  return dir;
}

function follow(options: FileSourceOptions, onEmit?: () => void) {
  const looked: string[] = [];
  const source = createFileSource(options, testContext({ batchMaxRecords: 200 }), {
    onLook: (path) => looked.push(path),
  });
  const out = collectOutput(onEmit ? { onEmit } : {});
  const running = source.run(out);
  const stop = async (): Promise<void> => {
    out.controller.abort();
    await running;
    await source.close?.();
  };
  return { out, stop, looked };
}

const atLeast = (n: number) => (out: CollectingOutput) => out.messages.length >= n;

describe('file source, following many files', () => {
  it('holds at most max_open_files descriptors, reading every file', async () => {
    const dir = manyFiles(300);
    const before = openDescriptors();
    let most = 0;
    const { out, stop } = follow(opts([join(dir, '*.log')]), () => {
      most = Math.max(most, openDescriptors() - before);
    });
    try {
      await out.until(atLeast(600));
      most = Math.max(most, openDescriptors() - before);
      // The bound, one descriptor briefly open while a file is identified, and the notification instance.
      expect(most).toBeLessThanOrEqual(16 + 2);
      expect(new Set(out.messages).size).toBe(600);
    } finally {
      await stop();
    }
  });

  it('looks only at the files that change, and reads an idle file reopened by path', async () => {
    const dir = manyFiles(500);
    const { out, stop, looked } = follow(opts([join(dir, '*.log')], { poll_interval_ms: 50 }));
    try {
      await out.until(atLeast(1000));
      // The first file read is long closed by now (only 16 descriptors): it is reopened when it grows.
      for (let round = 0; round < 3; round++) {
        looked.length = 0;
        appendFileSync(name(dir, 0), `${line(0, 2 + round)}\n`);
        await out.until(atLeast(1001 + round));
        expect(out.messages.at(-1)).toBe(line(0, 2 + round));
      }
      // Between the appends, the sweep checks a few files by path; none of the idle ones is read.
      expect(new Set(looked)).toEqual(new Set([name(dir, 0)]));
    } finally {
      await stop();
    }
  });

  it('finishes an idle file renamed out of the globs under its new name, then reads the new file', async () => {
    const dir = manyFiles(100);
    const { out, stop } = follow(opts([join(dir, '*.log')]));
    try {
      await out.until(atLeast(200));
      const path = name(dir, 3);
      // logrotate's rename: the last lines reach the old file, under both names, before the writer reopens.
      appendFileSync(path, 'before the rename\n');
      renameSync(path, `${path}.1`);
      appendFileSync(`${path}.1`, 'after the rename\n');
      writeFileSync(path, 'new file\n');
      await out.until(atLeast(203));
      expect(out.messages.slice(200)).toEqual(['before the rename', 'after the rename', 'new file']);
    } finally {
      await stop();
    }
  });

  it('follows an idle file renamed within the globs by its identity', async () => {
    const dir = manyFiles(100);
    const { out, stop } = follow(opts([join(dir, '*.log*')]));
    try {
      await out.until(atLeast(200));
      const path = name(dir, 7);
      renameSync(path, `${path}.1`);
      appendFileSync(`${path}.1`, 'after the rename\n');
      writeFileSync(path, 'new file\n');
      await out.until(atLeast(202));
      expect(out.messages.slice(200).sort()).toEqual(['after the rename', 'new file']);
      expect(out.messages.slice(0, 200)).toHaveLength(200);
      expect(new Set(out.messages).size).toBe(202);
    } finally {
      await stop();
    }
  });
});
