/**
 * Dedupe state through SIGKILL: the pipeline of crash-run.ts is killed at random points and rerun until
 * done, with the memory store and with the Redis store. Its output must be exactly the first occurrence of
 * every key, once each, in order: a store ahead of the committed cut would drop first occurrences, one
 * behind it would let duplicates through.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, expect, it } from 'vitest';
import { keyOf } from './crash-run.ts';
import { REDIS_URL } from '../../../test/support/redis-url.ts';
import { prng } from '../../../test/support/random.ts';

const RUNNER = fileURLToPath(new URL('./crash-run.ts', import.meta.url));
const COUNT = 300_000;
const KILLS = 10;
const prefix = `etl-test-dedupe-crash-${process.pid}-${Date.now()}:`;

const dir = mkdtempSync(join(tmpdir(), 'etl-dedupe-crash-'));
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  const redis = new Redis(REDIS_URL);
  try {
    const keys = await redis.keys(`${prefix}*`);
    // In slices: one call with every key as an argument overflows the stack.
    for (let i = 0; i < keys.length; i += 10_000) await redis.del(...keys.slice(i, i + 10_000));
  } finally {
    redis.disconnect();
  }
});

const sizeOf = (path: string) => (existsSync(path) ? statSync(path).size : 0);

/** The records the output must hold, and its size in bytes (one JSON line each). */
function expectedOutput(): { records: number[]; bytes: number } {
  const records: number[] = [];
  const seen = new Set<number>();
  let bytes = 0;
  for (let i = 0; i < COUNT; i++) {
    if (!seen.has(keyOf(i))) {
      records.push(i);
      bytes += JSON.stringify({ i, n: keyOf(i) }).length + 1;
    }
    seen.add(keyOf(i));
  }
  return { records, bytes };
}

it.each(['memory', 'redis'])('%s store: first occurrences exactly once through SIGKILLs', async (store) => {
  const dataDir = join(dir, store, '.etl');
  const output = join(dir, store, 'out.jsonl');
  const random = prng(11);
  const expected = expectedOutput();
  let kills = 0;
  for (let attempt = 0; attempt < 200; attempt++) {
    const child = spawn(process.execPath, [RUNNER, dataDir, output, String(COUNT), store, prefix], {
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
      // Kill k at a random point of the k-th of KILLS + 1 equal stretches of the output: each run gets further,
      // and the last kill still leaves a whole stretch to write, however fast the machine.
      const target = Math.floor((expected.bytes * (kills + 1 + random() * 0.5)) / (KILLS + 1));
      while (!done && sizeOf(output) < target) await new Promise((resolve) => setTimeout(resolve, 2));
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
  expect(kills).toBe(KILLS);

  expect(sizeOf(output)).toBe(expected.bytes);
  const lines = readFileSync(output, 'utf8').trim().split('\n');
  const got = lines.map((line) => (JSON.parse(line) as { i: number }).i);
  expect(got.length).toBe(expected.records.length);
  expect(got).toEqual(expected.records);
});
