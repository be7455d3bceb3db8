/** The checkpoint state file: written whole or not at all, and nothing left behind when writing fails. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { StateStore } from '../../engine/state/store.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const checkpoint = (id: number, padding = 0) => ({
  id,
  time: '2026-12-05T00:00:00Z',
  positions: { logs: { offset: id, note: 'x'.repeat(padding) } },
  sinks: {},
  transforms: {},
});

describe('state store', () => {
  it('leaves no temporary file behind when the write fails, and keeps the last state', async () => {
    const store = new StateStore(join(dir, 'a'), 'p');
    await store.save({ committed: checkpoint(1) });
    // A directory where the state file should go: the rename into place fails.
    const blocked = new StateStore(join(dir, 'b'), 'p');
    mkdirSync(join(dir, 'b', 'state', 'p.json'), { recursive: true });
    writeFileSync(join(dir, 'b', 'state', 'p.json', 'x'), 'x');
    await expect(blocked.save({ committed: checkpoint(2) })).rejects.toThrow(/cannot write checkpoint state/);
    expect(readdirSync(join(dir, 'b', 'state'))).toEqual(['p.json']);
    expect((await store.load())?.committed?.id).toBe(1);
  });

  it('removes at load the temporary files of saves killed midway, only those of processes gone', async () => {
    const store = new StateStore(join(dir, 'd'), 'p');
    await store.save({ committed: checkpoint(1) });
    // Above Linux's largest pid (2^22): no process has it.
    const gone = join(dir, 'd', 'state', 'p.json.4194399.tmp');
    const live = join(dir, 'd', 'state', `p.json.${process.ppid}.tmp`);
    const other = join(dir, 'd', 'state', 'q.json.4194399.tmp');
    for (const path of [gone, live, other]) writeFileSync(path, '{"half":');
    expect((await store.load())?.committed?.id).toBe(1);
    expect(readdirSync(join(dir, 'd', 'state')).sort()).toEqual([
      'p.json',
      `p.json.${process.ppid}.tmp`,
      'q.json.4194399.tmp',
    ]);
  });

  it('writes a small state and a large one (written asynchronously) whole, with no temporary file left', async () => {
    const store = new StateStore(join(dir, 'c'), 'p');
    await store.save({ committed: checkpoint(1) });
    expect((await store.load())?.committed).toEqual(checkpoint(1));
    await store.save({ committed: checkpoint(2, 300_000) });
    expect((await store.load())?.committed).toEqual(checkpoint(2, 300_000));
    expect(readdirSync(join(dir, 'c', 'state'))).toEqual(['p.json']);
  });

  // A real full disk needs a file system of our own: a small tmpfs, which only root can mount (as on CI).
  it.runIf(process.getuid?.() === 0)(
    'on a full disk: ETL_STATE_IO, the previous state intact, no .tmp left',
    async () => {
      const mount = join(dir, 'full');
      mkdirSync(mount);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mount]);
      try {
        const store = new StateStore(mount, 'p');
        await store.save({ committed: checkpoint(1) });
        let filler = 0;
        try {
          for (;;) writeFileSync(join(mount, `filler-${filler++}`), Buffer.alloc(4096));
        } catch (error) {
          expect((error as NodeJS.ErrnoException).code).toBe('ENOSPC');
        }
        await expect(store.save({ committed: checkpoint(2, 20_000) })).rejects.toMatchObject({ code: 'ETL_STATE_IO' });
        expect(readdirSync(join(mount, 'state'))).toEqual(['p.json']);
        expect((await store.load())?.committed?.id).toBe(1);
      } finally {
        execFileSync('umount', [mount]);
      }
    },
  );
});
