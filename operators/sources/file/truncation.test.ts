/**
 * Files truncated in place. copytruncate (`cp access.log access.log.1; : > access.log`, back to back, as
 * logrotate does) must not read the copy again: what identified the content before the truncation is kept, so
 * the copy is known whatever the timing, and continues where the reading of the original was. Without follow,
 * a file truncated while it is read does not emit its cut last line, says so, and is an input error.
 */
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  openSync,
  closeSync,
  renameSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createFileSource } from './file.ts';
import { READ_BUFFER_BYTES } from '../../shared/line-reader/lines.ts';
import type { FileSourceOptions } from './schema.ts';
import {
  type CollectingOutput,
  type CollectOptions,
  collectOutput,
  testContext,
  scratchDirs,
  sourceOptions,
} from './test-support.ts';

const workdir = scratchDirs('truncation');

/** Followed, unless a test says otherwise. */
const opts = (paths: string[], extra: Partial<FileSourceOptions> = {}) =>
  sourceOptions(paths, { follow: true, ...extra });

function lines(prefix: string, from: number, to: number): string[] {
  const out: string[] = [];
  for (let i = from; i < to; i++)
    out.push(
      `${prefix} ${String(i).padStart(6, '0')} GET /a/${String(i).padStart(6, '0')} HTTP/1.1 200 ${'z'.repeat(30)}`,
    );
  return out;
}
const text = (ls: string[]): string => ls.map((l) => `${l}\n`).join('');

function follow(options: FileSourceOptions, restoredPosition?: unknown, collect: CollectOptions = {}) {
  const ctx = testContext({ restoredPosition, batchMaxRecords: 500 });
  const source = createFileSource(options, ctx);
  const out = collectOutput(collect);
  const running = source.run(out);
  const stop = async (): Promise<void> => {
    out.controller.abort();
    await running;
    await source.close?.();
  };
  return { out, ctx, stop };
}

const atLeast = (n: number) => (out: CollectingOutput) => out.messages.length >= n;

/** Every expected line exactly once (files are read in path order, so compare as multisets). */
function expectExactlyOnce(messages: string[], expected: string[]): void {
  const counts = new Map<string, number>();
  for (const m of messages) counts.set(m, (counts.get(m) ?? 0) + 1);
  const repeated = [...counts].filter(([, n]) => n > 1).map(([m]) => m);
  expect(repeated.slice(0, 3)).toEqual([]);
  expect([...messages].sort()).toEqual([...expected].sort());
}

describe('file source, copytruncate while following', () => {
  for (const copyName of ['access.log.1', 'access-1.log']) {
    it(`does not read the copy again when cp and truncate come back to back (copy ${copyName})`, async () => {
      const dir = workdir();
      const path = join(dir, 'access.log');
      const copy = join(dir, copyName);
      writeFileSync(path, text(lines('old', 0, 2000)));
      const { out, stop } = follow(opts([join(dir, 'access*')]));
      try {
        await out.until(atLeast(2000));
        // logrotate's copytruncate: the copy, then the truncation at once, then the writer goes on.
        copyFileSync(path, copy);
        truncateSync(path, 0);
        appendFileSync(path, text(lines('new', 0, 500)));
        await out.until(atLeast(2500));
        // Let every pending notification and check run: a late re-read would show as more lines.
        appendFileSync(path, text(lines('new', 500, 501)));
        await out.until(atLeast(2501));
        expectExactlyOnce(out.messages, [...lines('old', 0, 2000), ...lines('new', 0, 501)]);
      } finally {
        await stop();
      }
    });
  }

  it('reads from the copy the lines written before the truncation that it had not read yet', async () => {
    const dir = workdir();
    const path = join(dir, 'access.log');
    writeFileSync(path, text(lines('old', 0, 1000)));
    const { out, stop } = follow(opts([join(dir, 'access.log*')]));
    try {
      await out.until(atLeast(1000));
      // Written, copied and truncated in one go: the source may well see only the copy hold them.
      const fd = openSync(path, 'a');
      writeSync(fd, text(lines('old', 1000, 1300)));
      closeSync(fd);
      copyFileSync(path, `${path}.1`);
      truncateSync(path, 0);
      appendFileSync(path, text(lines('new', 0, 100)));
      await out.until(atLeast(1400));
      appendFileSync(path, text(lines('new', 100, 101)));
      await out.until(atLeast(1401));
      expectExactlyOnce(out.messages, [...lines('old', 0, 1300), ...lines('new', 0, 101)]);
    } finally {
      await stop();
    }
  });

  it('knows the copy after a restart when the rotation happened while it was stopped', async () => {
    const dir = workdir();
    const path = join(dir, 'access.log');
    writeFileSync(path, text(lines('old', 0, 800)));
    const first = follow(opts([join(dir, 'access.log*')]));
    await first.out.until(atLeast(800));
    await first.stop();
    appendFileSync(path, text(lines('old', 800, 900)));
    copyFileSync(path, `${path}.1`);
    truncateSync(path, 0);
    appendFileSync(path, text(lines('new', 0, 50)));
    const second = follow(opts([join(dir, 'access.log*')]), first.out.lastPosition);
    try {
      await second.out.until(atLeast(150));
      appendFileSync(path, text(lines('new', 50, 51)));
      await second.out.until(atLeast(151));
      expectExactlyOnce(
        [...first.out.messages, ...second.out.messages],
        [...lines('old', 0, 900), ...lines('new', 0, 51)],
      );
    } finally {
      await second.stop();
    }
  });
});

describe('file source, copytruncate under load', () => {
  /**
   * Six logrotate runs (shift the generations, none deleted; copy; truncate) while lines keep coming in bursts.
   * `lag`: the output is slow, so the source is behind, in the middle of the file when it is truncated.
   * Without it, nothing waits for the source: the rotations come faster than it can look.
   */
  async function rotateWhileWriting(lag: boolean): Promise<void> {
    const dir = workdir();
    const path = join(dir, 'access.log');
    writeFileSync(path, '');
    const { out, stop } = follow(opts([join(dir, 'access.log*')]), undefined, lag ? { delayMs: 1 } : {});
    const written: string[] = [];
    try {
      for (let round = 0; round < 6; round++) {
        const before = written.length;
        for (let burst = 0; burst < 5; burst++) {
          const next = lines(`r${round}`, burst * 300, (burst + 1) * 300);
          appendFileSync(path, text(next));
          written.push(...next);
          await new Promise((resolve) => setImmediate(resolve));
        }
        if (lag) await out.until(atLeast(before + 300));
        for (let generation = 6; generation >= 1; generation--) {
          if (existsSync(`${path}.${generation}`)) renameSync(`${path}.${generation}`, `${path}.${generation + 1}`);
        }
        copyFileSync(path, `${path}.1`);
        truncateSync(path, 0);
      }
      const last = lines('end', 0, 2);
      appendFileSync(path, text(last));
      written.push(...last);
      await out.until(atLeast(written.length));
      // Whatever is still pending would show as more lines: one more line, then the count must be exact.
      const more = lines('end', 2, 3);
      appendFileSync(path, text(more));
      written.push(...more);
      await out.until(atLeast(written.length));
      expectExactlyOnce(out.messages, written);
    } finally {
      await stop();
    }
  }

  it('reads every line exactly once when the source is behind, in the middle of the file', () =>
    rotateWhileWriting(true));

  it('reads every line exactly once when rotations come faster than the source looks', () => rotateWhileWriting(false));
});

describe('file source, a file truncated while it is read to its end', () => {
  it('does not emit the cut line, reports the file, and the next run reads the rest from its copy', async () => {
    const dir = workdir();
    const path = join(dir, 'access.log');
    const all = lines('big', 0, 40_000);
    writeFileSync(path, text(all));
    const lineBytes = (all[0] as string).length + 1;
    let rotated = false;
    const source = createFileSource(
      opts([join(dir, 'access.log*')], { follow: false }),
      testContext({ batchMaxRecords: 100 }),
    );
    // copytruncate while the first buffer is being emitted: the reader holds the line that straddles its end.
    const out = collectOutput({
      onEmit: () => {
        if (rotated) return;
        rotated = true;
        copyFileSync(path, `${path}.1`);
        truncateSync(path, 0);
      },
    });
    await source.run(out);
    await source.close?.();
    const whole = Math.floor(READ_BUFFER_BYTES / lineBytes);
    expect(out.messages).toEqual(all.slice(0, whole));
    expect(out.inputErrors).toHaveLength(1);
    expect(out.inputErrors[0]?.reason).toContain('shrank while it was read');
    expect(out.inputErrors[0]?.reason).toContain('cut last line was not emitted');
    expect(out.inputErrors[0]?.where).toMatchObject({ file: path, offset: whole * lineBytes });

    // The next run: the copy continues where the reading stopped, the truncated file is read from its start.
    appendFileSync(path, text(lines('after', 0, 5)));
    const next = collectOutput();
    const again = createFileSource(
      opts([join(dir, 'access.log*')], { follow: false }),
      testContext({ restoredPosition: out.lastPosition }),
    );
    await again.run(next);
    await again.close?.();
    expect(next.inputErrors).toEqual([]);
    expectExactlyOnce([...out.messages, ...next.messages], [...all, ...lines('after', 0, 5)]);
  });
});
