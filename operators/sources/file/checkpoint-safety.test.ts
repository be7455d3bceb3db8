/**
 * A checkpoint that does not match the files is refused, never taken as "read everything again": a position
 * of another shape, or an offset beyond a file that was not modified since, stops the source with a message
 * that names the mismatch and the way out (`etl apply --reset`). A file that really shrank since the
 * checkpoint (it was modified after) is the one case read again from its start, with a warning.
 */
import { statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { OperatorDefinition } from '../../../engine/operator.ts';
import { runPipeline } from '../../../engine/runtime/run.ts';
import { collected, collectSink } from '../../../test/support/operators.ts';
import { pipeline, stage } from '../../../test/support/spec.ts';
import { createFileSource } from './file.ts';
import fileSource from './index.ts';
import type { FileEntry, FilePosition } from './position.ts';
import type { FileSourceOptions } from './schema.ts';
import { collectOutput, originOf, testContext, scratchDirs, sourceOptions } from './test-support.ts';
import type { EtlRecord } from '../../../engine/record.ts';

const workdir = scratchDirs('checkpoint');

const opts = sourceOptions;

const text = (prefix: string, from: number, to: number): string => {
  let out = '';
  for (let i = from; i < to; i++) out += `${prefix} line ${String(i).padStart(6, '0')} ${'x'.repeat(40)}\n`;
  return out;
};

function inputOfFirst(out: { records: readonly EtlRecord[] }): string | undefined {
  return originOf(out.records[0] as EtlRecord).input;
}

async function readOnce(options: FileSourceOptions, restoredPosition?: unknown) {
  const ctx = testContext({ restoredPosition });
  const source = createFileSource(options, ctx);
  const out = collectOutput();
  try {
    await source.run(out);
  } finally {
    await source.close?.();
  }
  return { out, ctx };
}

/** The position with the one file's entry changed. */
function withEntry(position: unknown, change: (entry: FileEntry) => Record<string, unknown>): unknown {
  const files = (position as FilePosition).files;
  return { files: files.map((e) => change(e)) };
}

describe('file source, a checkpoint that does not match', () => {
  it('refuses a position that is not a file source position, naming the way to start over', () => {
    for (const position of [42, { files: 'a.log' }, { files: [{ path: 'a.log', offset: -1 }] }]) {
      expect(() => createFileSource(opts(['/nonexistent/*.log']), testContext({ restoredPosition: position }))).toThrow(
        /not a position of the file source.*etl apply --reset/s,
      );
    }
  });

  it('refuses an offset beyond the size of a file not modified since, and emits nothing', async () => {
    const dir = workdir();
    const path = join(dir, 'a.log');
    writeFileSync(path, text('a', 0, 100));
    const first = await readOnce(opts([path]));
    const size = statSync(path).size;
    const wrong = withEntry(first.out.lastPosition, (e) => ({ ...e, offset: size + 1000 }));
    const ctx = testContext({ restoredPosition: wrong });
    const source = createFileSource(opts([path]), ctx);
    const out = collectOutput();
    const refusal = await source.run(out).then(
      () => undefined,
      (error: unknown) => error as Error,
    );
    await source.close?.();
    expect(refusal?.message).toContain(path);
    expect(refusal?.message).toContain(`${size + 1000} bytes`);
    expect(refusal?.message).toContain('not modified since');
    expect(refusal?.message).toContain('etl apply --reset');
    expect(out.records).toHaveLength(0);
  });

  it('refuses an older copy of a file put back in its place (shorter, modified before the checkpoint)', async () => {
    const dir = workdir();
    const path = join(dir, 'a.log');
    writeFileSync(path, text('a', 0, 100));
    const before = statSync(path).mtime;
    const first = await readOnce(opts([path]));
    // A backup of an earlier state restored with its times (cp -p, tar, rsync -t).
    writeFileSync(path, text('a', 0, 40));
    utimesSync(path, before, new Date(before.getTime() - 60_000));
    await expect(readOnce(opts([path]), first.out.lastPosition)).rejects.toThrow(/etl apply --reset/);
  });

  it('reads a file that shrank since the checkpoint (modified after it) from its start, and says so', async () => {
    const dir = workdir();
    const path = join(dir, 'a.log');
    writeFileSync(path, text('a', 0, 100));
    utimesSync(path, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    const first = await readOnce(opts([path]));
    // Truncated while the pipeline was stopped, and refilled with lines that begin the same way.
    truncateSync(path, 0);
    writeFileSync(path, text('a', 0, 10));
    const second = await readOnce(opts([path]), first.out.lastPosition);
    expect(second.out.messages).toHaveLength(10);
    const warning = second.ctx.logs.find((l) => l.level === 'warn');
    expect(warning?.message).toContain('shrank since the checkpoint');
    expect(warning?.fields).toMatchObject({ path });
    // The new content's lines are another input than the old content's at the same offsets.
    expect(inputOfFirst(second.out)).not.toBe(inputOfFirst(first.out));
  });

  it('gives content replaced while stopped (other first bytes, longer) keys of its own, and keeps them on restart', async () => {
    const dir = workdir();
    const path = join(dir, 'a.log');
    writeFileSync(path, text('a', 0, 20));
    const first = await readOnce(opts([path]));
    truncateSync(path, 0);
    writeFileSync(path, text('b', 0, 40));
    const second = await readOnce(opts([path]), first.out.lastPosition);
    expect(second.out.messages).toHaveLength(40);
    expect(inputOfFirst(second.out)).not.toBe(inputOfFirst(first.out));
    writeFileSync(path, text('b', 0, 41));
    const third = await readOnce(opts([path]), second.out.lastPosition);
    expect(third.out.messages).toHaveLength(1);
    expect(inputOfFirst(third.out)).toBe(inputOfFirst(second.out));
  });

  it('reads from the start, with a warning that it cannot tell, when an older checkpoint has no size and time', async () => {
    const dir = workdir();
    const path = join(dir, 'a.log');
    writeFileSync(path, text('a', 0, 20));
    const first = await readOnce(opts([path]));
    const legacy = withEntry(first.out.lastPosition, ({ size: _size, mtime_ms: _mtime, ...e }) => ({
      ...e,
      offset: e.offset + 500,
    }));
    const second = await readOnce(opts([path]), legacy);
    expect(second.out.messages).toHaveLength(20);
    expect(second.ctx.logs.some((l) => l.level === 'warn' && l.message.includes('cannot tell'))).toBe(true);
  });

  it('refuses a compressed file shorter than its checkpoint offset', async () => {
    const dir = workdir();
    const path = join(dir, 'a.log.gz');
    writeFileSync(path, gzipSync(text('z', 0, 50)));
    const first = await readOnce(opts([path]));
    const wrong = withEntry(first.out.lastPosition, ({ complete: _complete, ...e }) => ({
      ...e,
      offset: e.offset + 10_000,
    }));
    await expect(readOnce(opts([path]), wrong)).rejects.toThrow(/a\.log\.gz.*etl apply --reset/s);
  });

  it('fails the run through the runtime, with the refusal as its error, and keeps the checkpoint', async () => {
    const dir = workdir();
    const path = join(dir, 'a.log');
    writeFileSync(path, text('r', 0, 30));
    const spec = pipeline(
      'file-refusal',
      join(dir, '.etl'),
      [
        stage({ id: 'logs', def: fileSource as OperatorDefinition, options: { ...opts([path]) } }),
        stage({ id: 'out', def: collectSink as OperatorDefinition, inputs: ['logs'], options: { name: 'refusal' } }),
      ],
      { batchMaxRecords: 10 },
    );
    collected.set('refusal', []);
    expect((await runPipeline(spec)).ok).toBe(true);
    // Another, older file with the same beginning put in its place, with its old times.
    const mtime = statSync(path).mtime;
    writeFileSync(path, text('r', 0, 5));
    utimesSync(path, mtime, new Date(mtime.getTime() - 1000));
    const second = await runPipeline(spec);
    expect(second.ok).toBe(false);
    expect(second.error?.message).toMatch(/stage logs: .*etl apply --reset/s);
    expect(collected.get('refusal')).toHaveLength(30);
  });
});
