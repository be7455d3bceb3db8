import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { watchFile } from './watch-file.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-watch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A watch whose changes are counted, and a promise for the next one. */
async function watched(path: string) {
  let changes = 0;
  let wake: (() => void) | undefined;
  const watch = await watchFile(
    path,
    () => {
      changes++;
      wake?.();
    },
    (error) => {
      throw error;
    },
    20,
  );
  const next = () =>
    new Promise<void>((resolve) => {
      wake = resolve;
    });
  return { watch, next, count: () => changes };
}

describe('watchFile', () => {
  it('tells of a file renamed over the watched one, of one rewritten in place, and of one deleted then made again', async () => {
    const file = join(dir, 'db.mmdb');
    writeFileSync(file, 'one');
    const w = await watched(file);
    try {
      let changed = w.next();
      // Files beside it are none of its business: the next change seen is the rename.
      writeFileSync(join(dir, 'other.mmdb'), 'x');
      writeFileSync(join(dir, 'db.mmdb.tmp'), 'two');
      renameSync(join(dir, 'db.mmdb.tmp'), file);
      await changed;
      expect(w.count()).toBe(1);

      changed = w.next();
      writeFileSync(file, 'three, longer');
      await changed;
      expect(w.count()).toBe(2);

      changed = w.next();
      rmSync(file);
      writeFileSync(file, 'four');
      await changed;
      expect(w.count()).toBe(3);
    } finally {
      w.watch.close();
    }
  });

  it('watches a file that does not exist yet, and tells when it appears', async () => {
    const file = join(dir, 'later.mmdb');
    const w = await watched(file);
    try {
      const changed = w.next();
      writeFileSync(file, 'here');
      await changed;
      expect(w.count()).toBe(1);
    } finally {
      w.watch.close();
    }
  });
});
