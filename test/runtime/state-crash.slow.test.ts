/**
 * Operator state through SIGKILL: a pipeline whose transform keeps a running count per key (keyed state)
 * and a total (inline state) is killed at random points and rerun until done; its output must be exactly
 * that of one uninterrupted run, line for line. State ahead of or behind the committed cut would repeat or
 * skip counts.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { prng } from '../support/random.ts';

const RUNNER = fileURLToPath(new URL('../support/stateful-run.ts', import.meta.url));
const COUNT = 200_000;
const KEYS = 97;
const KILLS = 20;

const dir = mkdtempSync(join(tmpdir(), 'etl-state-crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sizeOf = (path: string) => (existsSync(path) ? statSync(path).size : 0);

it(`keeps operator state exactly once through up to ${KILLS} SIGKILLs`, async () => {
  const dataDir = join(dir, '.etl');
  const output = join(dir, 'out.jsonl');
  const random = prng(7);
  let kills = 0;
  for (let attempt = 0; attempt < 200; attempt++) {
    const child = spawn(process.execPath, [RUNNER, dataDir, output, String(COUNT)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let done = false;
    void exited.then(() => {
      done = true;
    });
    if (kills < KILLS) {
      // Once output grows, kill at a random point shortly after: every run gets a little further.
      const start = sizeOf(output);
      while (!done && sizeOf(output) <= start) await new Promise((resolve) => setTimeout(resolve, 2));
      await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 20)));
      if (!done) {
        child.kill('SIGKILL');
        await exited;
        kills++;
        continue;
      }
    }
    expect(await exited, stderr).toBe(0);
    break;
  }
  // How far each run gets before its kill depends on the machine's speed; most kills land mid-run.
  expect(kills).toBeGreaterThanOrEqual(KILLS / 2);

  const counts = new Map<string, number>();
  const lines = readFileSync(output, 'utf8').trim().split('\n');
  expect(lines).toHaveLength(COUNT);
  lines.forEach((line, i) => {
    const record = JSON.parse(line) as { id: string; key: string; count: number; seen: number };
    const key = `k${i % KEYS}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    expect(record).toEqual({ id: `src-${i}`, key, count: counts.get(key), seen: i + 1 });
  });
});
