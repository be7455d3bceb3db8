/**
 * The lock file that keeps two processes from running one pipeline: it names its holder, is taken over at
 * once from a holder that died, and exactly one of several processes racing for it gets it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs, { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { LockFile, readHolder, removeDeadLock } from '../../engine/lock.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-lock-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const LOCK_MODULE = fileURLToPath(new URL('../../engine/lock.ts', import.meta.url));
/**
 * A process that says `ready`, tries the lock once when told `go` on its stdin (so that several try at the
 * same moment), says `got` or `locked …`, and holds the lock until its stdin closes.
 */
const contender = join(dir, 'contender.ts');
writeFileSync(
  contender,
  `import { createInterface } from 'node:readline';
import { LockFile } from ${JSON.stringify(LOCK_MODULE)};
const lock = new LockFile(process.argv[2], 'contender ' + process.pid);
const lines = createInterface({ input: process.stdin });
process.stdout.write('ready\\n');
for await (const line of lines) {
  if (line !== 'go') continue;
  try {
    await lock.acquire();
    process.stdout.write('got\\n');
  } catch (error) {
    process.stdout.write('locked ' + error.message + '\\n');
  }
}
await lock.release();
`,
);

interface Contender {
  readonly child: ChildProcess;
  /** Resolves with the next line it prints (or how it exited). */
  next(): Promise<string>;
}

function contend(path: string): Contender {
  const child = spawn(process.execPath, [contender, path], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiters: Array<(line: string) => void> = [];
  let partial = '';
  const deliver = (line: string) => {
    const waiter = waiters.shift();
    if (waiter) waiter(line);
    else lines.push(line);
  };
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    partial += chunk;
    for (let nl = partial.indexOf('\n'); nl >= 0; nl = partial.indexOf('\n')) {
      deliver(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
    }
  });
  child.on('exit', (code) => deliver(`exited ${code}`));
  return {
    child,
    next: () => {
      const line = lines.shift();
      return line !== undefined ? Promise.resolve(line) : new Promise((resolve) => waiters.push(resolve));
    },
  };
}

/** Starts contenders, waits until each is ready, then has them all try at once; their answers. */
async function race(path: string, count: number): Promise<{ racers: Contender[]; answers: string[] }> {
  const racers = Array.from({ length: count }, () => contend(path));
  expect(await Promise.all(racers.map((r) => r.next()))).toEqual(racers.map(() => 'ready'));
  for (const r of racers) r.child.stdin?.write('go\n');
  return { racers, answers: await Promise.all(racers.map((r) => r.next())) };
}

async function end(racers: readonly Contender[]): Promise<void> {
  await Promise.all(
    racers.map((r) => {
      const closed = new Promise((resolve) => r.child.on('close', resolve));
      r.child.stdin?.end();
      return closed;
    }),
  );
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0']);
  await new Promise((resolve) => child.on('exit', resolve));
  return child.pid as number;
}

describe('lock file', () => {
  it('names its holder, refuses a second holder, and is free again once released', async () => {
    const path = join(dir, 'a.lock');
    const { racers, answers } = await race(path, 1);
    const first = racers[0] as Contender;
    expect(answers).toEqual(['got']);
    const holder = await readHolder(path);
    expect(holder).toMatchObject({ pid: first.child.pid, host: hostname(), what: `contender ${first.child.pid}` });
    const second = await race(path, 1);
    expect(second.answers[0]).toMatch(
      new RegExp(`^locked contender ${first.child.pid} \\(pid ${first.child.pid}, since .+\\) holds ${path}: `),
    );
    await end([first, ...second.racers]);
    const mine = new LockFile(path, 'test');
    await mine.acquire();
    await mine.release();
    await mine.release();
  });

  it('takes over at once a lock whose holder died, even one with a bare pid', async () => {
    const path = join(dir, 'b.lock');
    const dead = await deadPid();
    writeFileSync(path, JSON.stringify({ pid: dead, host: hostname(), since: '2026-01-01T00:00:00Z', what: 'x' }));
    const lock = new LockFile(path, 'test');
    await lock.acquire();
    expect((await readHolder(path))?.pid).toBe(process.pid);
    await lock.release();
    writeFileSync(path, String(await deadPid()));
    await lock.acquire();
    await lock.release();
  });

  it('gives a free or dead holder’s lock to exactly one of several processes trying at once', async () => {
    for (let round = 0; round < 6; round++) {
      const path = join(dir, `race-${round}.lock`);
      // No lock yet; the lock of a process that died; the same as a bare pid, as older versions wrote it.
      if (round % 3 === 1) {
        writeFileSync(path, JSON.stringify({ pid: await deadPid(), host: hostname(), since: '', what: 'dead' }));
      } else if (round % 3 === 2) writeFileSync(path, String(await deadPid()));
      const { racers, answers } = await race(path, 5);
      expect(
        answers.filter((a) => a === 'got'),
        answers.join('\n'),
      ).toHaveLength(1);
      const winner = racers[answers.indexOf('got')] as Contender;
      expect(JSON.parse(readFileSync(path, 'utf8')).pid).toBe(winner.child.pid);
      await end(racers);
    }
  });

  it('a takeover leaves alone a lock that no longer names the dead holder, or that another takeover holds', async () => {
    const path = join(dir, 'e.lock');
    const dead = { pid: await deadPid(), host: hostname(), since: '2026-01-01T00:00:00Z', what: 'dead' };
    // Another process found the same dead holder and took over first: its lock stays.
    const fresh = { pid: process.pid, host: hostname(), since: '2026-01-01T00:00:01Z', what: 'fresh' };
    writeFileSync(path, JSON.stringify(fresh));
    await removeDeadLock(path, dead);
    expect(await readHolder(path)).toEqual(fresh);
    // Another process is between its check and its removal: this one does not remove anything.
    writeFileSync(path, JSON.stringify(dead));
    mkdirSync(`${path}.takeover`);
    await removeDeadLock(path, dead);
    expect(await readHolder(path)).toEqual(dead);
    rmdirSync(`${path}.takeover`);
    await removeDeadLock(path, dead);
    expect(await readHolder(path)).toBeUndefined();
  });

  it('a takeover of an unreadable lock leaves alone the lock another process linked after it looked', async () => {
    const path = join(dir, 'g.lock');
    const fresh = { pid: process.pid, host: hostname(), since: '2026-01-01T00:00:02Z', what: 'fresh' };
    // The takeover finds no file (the unreadable one was removed by another takeover), and that process's
    // own lock appears at once, before this one could act on what it saw.
    const real = fs.promises.readFile;
    vi.spyOn(fs.promises, 'readFile').mockImplementation(async (...args: Parameters<typeof real>) => {
      if (args[0] !== path) return real(...args);
      writeFileSync(path, JSON.stringify(fresh));
      throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' });
    });
    syncBuiltinESMExports();
    try {
      await removeDeadLock(path, undefined);
    } finally {
      vi.restoreAllMocks();
      syncBuiltinESMExports();
    }
    expect(await readHolder(path)).toEqual(fresh);
  });

  it('refuses a live holder named by a bare pid, as older versions wrote it', async () => {
    const path = join(dir, 'f.lock');
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      writeFileSync(path, String(sleeper.pid));
      await expect(new LockFile(path, 'test').acquire()).rejects.toThrow(`(pid ${sleeper.pid}) holds ${path}`);
      expect(readFileSync(path, 'utf8')).toBe(String(sleeper.pid));
    } finally {
      sleeper.kill();
    }
  });

  it('refuses a holder on another host, naming it, however old its lock', async () => {
    const path = join(dir, 'c.lock');
    writeFileSync(path, JSON.stringify({ pid: 1, host: 'elsewhere', since: '2020-01-01T00:00:00Z', what: 'etl' }));
    await expect(new LockFile(path, 'test').acquire()).rejects.toThrow(
      `etl (pid 1 on host elsewhere, since 2020-01-01T00:00:00Z) holds ${path}: wait for it to finish, or stop it; if that host is gone, remove ${path}`,
    );
  });

  it('waits for the holder when asked to, and says so', async () => {
    const path = join(dir, 'd.lock');
    const { racers, answers } = await race(path, 1);
    const first = racers[0] as Contender;
    expect(answers).toEqual(['got']);
    const waits: number[] = [];
    const waiting = new LockFile(path, 'test').acquire({ wait: true, onWait: (holder) => waits.push(holder.pid) });
    while (waits.length === 0) await new Promise((resolve) => setImmediate(resolve));
    expect(waits).toEqual([first.child.pid]);
    await end([first]);
    await waiting;
    expect((await readHolder(path))?.pid).toBe(process.pid);
  });
});
