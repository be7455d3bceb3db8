/** Keyed operator state: only changes are written, a rerun finds the map as the committed cut left it. */
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { KeyedStateBackend, type KeyedRecord } from '../../engine/state/keyed.ts';

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'etl-keyed-'));
  made.push(dir);
  return dir;
};

const logDir = (dataDir: string) => join(dataDir, 'state', 'p');

describe('keyed state', () => {
  it('writes only what changed at each checkpoint, and a rerun restores the committed cut', async () => {
    const dataDir = tempDir();
    const backend = new KeyedStateBackend(dataDir, 'p');
    const counts = backend.map<number>('count', 'by_key');
    await backend.restore(undefined, undefined);
    for (let i = 0; i < 1000; i++) counts.set(`k${i}`, 1);
    const first = (await backend.prepare(1)) as KeyedRecord;
    const afterFirst = statSync(join(logDir(dataDir), 'count.by_key.1.log')).size;
    counts.set('k1', 2);
    counts.delete('k2');
    const second = (await backend.prepare(2)) as KeyedRecord;
    const grown = statSync(join(logDir(dataDir), 'count.by_key.1.log')).size - afterFirst;
    // Two lines, not a thousand.
    expect(grown).toBeLessThan(40);
    counts.set('k3', 99);
    await backend.prepare(3); // a checkpoint that never committed

    const rerun = new KeyedStateBackend(dataDir, 'p');
    const restored = rerun.map<number>('count', 'by_key');
    await rerun.restore(second, 2);
    expect(restored.size).toBe(999);
    expect(restored.get('k1')).toBe(2);
    expect(restored.has('k2')).toBe(false);
    expect(restored.get('k3')).toBe(1);
    // What snapshot 3 wrote is gone from the log: a later checkpoint 3 of this run writes its own.
    const back = new KeyedStateBackend(dataDir, 'p');
    const again = back.map<number>('count', 'by_key');
    await back.restore(first, 1);
    expect(again.get('k1')).toBe(1);
    expect(again.size).toBe(1000);
  });

  it('ignores a line torn by a crash, and starts empty (files removed) on a run without a checkpoint', async () => {
    const dataDir = tempDir();
    const backend = new KeyedStateBackend(dataDir, 'p');
    const map = backend.map<string>('s', 'm');
    await backend.restore(undefined, undefined);
    map.set('a', 'x');
    const record = (await backend.prepare(1)) as KeyedRecord;
    appendFileSync(join(logDir(dataDir), 's.m.1.log'), '[2,"b","y"');
    const rerun = new KeyedStateBackend(dataDir, 'p');
    const restored = rerun.map<string>('s', 'm');
    await rerun.restore(record, 1);
    expect([...restored.entries()]).toEqual([['a', 'x']]);
    const fresh = new KeyedStateBackend(dataDir, 'p');
    const empty = fresh.map<string>('s', 'm');
    await fresh.restore(undefined, undefined);
    expect(empty.size).toBe(0);
    expect(readdirSync(logDir(dataDir))).toEqual([]);
  });

  it('compacts a log grown past twice its live data into the next generation, and drops the old one once committed', async () => {
    const dataDir = tempDir();
    const backend = new KeyedStateBackend(dataDir, 'p');
    const map = backend.map<string>('s', 'm');
    await backend.restore(undefined, undefined);
    const value = 'v'.repeat(100);
    let record: KeyedRecord | undefined;
    let id = 0;
    // Each checkpoint rewrites every key: the log outgrows its live data (and 1 MiB) within a few.
    while (record?.['s.m']?.generation !== 2 && id < 100) {
      id++;
      for (let k = 0; k < 2000; k++) map.set(`k${k}`, `${value}${id}`);
      record = await backend.prepare(id);
      await backend.committed(id);
    }
    expect(record?.['s.m']).toEqual({ file: 's.m.2.log', generation: 2 });
    expect(readdirSync(logDir(dataDir))).toEqual(['s.m.2.log']);
    const lines = readFileSync(join(logDir(dataDir), 's.m.2.log'), 'utf8')
      .trim()
      .split('\n');
    expect(lines).toHaveLength(2000);
    const rerun = new KeyedStateBackend(dataDir, 'p');
    const restored = rerun.map<string>('s', 'm');
    await rerun.restore(record, id);
    expect(restored.get('k0')).toBe(`${value}${id}`);
    expect(restored.size).toBe(2000);
  });

  it('compacts at the same checkpoint whether or not the process restarted in between (lines counted on replay)', async () => {
    const value = 'v'.repeat(100);
    const compactsAt = async (restartEach: boolean): Promise<number> => {
      const dataDir = tempDir();
      let backend = new KeyedStateBackend(dataDir, 'p');
      let map = backend.map<string>('s', 'm');
      await backend.restore(undefined, undefined);
      let record: KeyedRecord | undefined;
      for (let id = 1; id < 100; id++) {
        // Half the keys change at each checkpoint, and a tenth are removed and come back.
        for (let k = 0; k < 2000; k++) if ((k + id) % 2 === 0) map.set(`k${k}`, `${value}${id}`);
        for (let k = id % 10; k < 2000; k += 10) map.delete(`k${k}`);
        record = await backend.prepare(id);
        await backend.committed(id);
        if (record?.['s.m']?.generation === 2) return id;
        if (restartEach) {
          backend = new KeyedStateBackend(dataDir, 'p');
          map = backend.map<string>('s', 'm');
          await backend.restore(record, id);
        }
      }
      return -1;
    };
    const uninterrupted = await compactsAt(false);
    expect(uninterrupted).toBeGreaterThan(1);
    expect(await compactsAt(true)).toBe(uninterrupted);
  });

  it('restores to any committed cut exactly what the map held at it (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c', 'd'), fc.option(fc.integer(), { nil: undefined })), {
            maxLength: 6,
          }),
          { minLength: 1, maxLength: 6 },
        ),
        fc.nat(),
        async (checkpoints, pick) => {
          const dataDir = tempDir();
          const backend = new KeyedStateBackend(dataDir, 'p');
          const map = backend.map<number>('s', 'm');
          await backend.restore(undefined, undefined);
          const expected: Array<Map<string, number>> = [];
          const records: KeyedRecord[] = [];
          for (const [i, changes] of checkpoints.entries()) {
            for (const [key, value] of changes) {
              if (value === undefined) map.delete(key);
              else map.set(key, value);
            }
            expected.push(new Map(map.entries()));
            records.push((await backend.prepare(i + 1)) as KeyedRecord);
          }
          const at = pick % checkpoints.length;
          const rerun = new KeyedStateBackend(dataDir, 'p');
          const restored = rerun.map<number>('s', 'm');
          await rerun.restore(records[at], at + 1);
          expect(new Map(restored.entries())).toEqual(expected[at]);
          rmSync(dataDir, { recursive: true, force: true });
        },
      ),
      { numRuns: 60 },
    );
  });
});
