/**
 * The embedded database's lock: of several processes opening one data directory at the same moment exactly
 * one gets it (the lock file must never be seen empty and taken for a dead holder's), a dead holder's lock
 * is taken over, and a refusal says who holds it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { EmbeddedLock } from './lock.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-embedded-lock-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const LOCK_MODULE = fileURLToPath(new URL('./lock.ts', import.meta.url));
/**
 * A process that says `ready`, tries the lock when told `go` on its stdin (so that all try at the same
 * moment), says `got` or `locked …`, and holds the lock until its stdin closes.
 */
const contender = join(dir, 'contender.ts');
writeFileSync(
  contender,
  `import { createInterface } from 'node:readline';
import { EmbeddedLock } from ${JSON.stringify(LOCK_MODULE)};
const lock = new EmbeddedLock(process.argv[2], 'contender ' + process.pid);
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

async function end(racers: readonly Contender[]): Promise<void> {
  await Promise.all(
    racers.map((r) => {
      const closed = new Promise((resolve) => r.child.on('close', resolve));
      r.child.stdin?.end();
      return closed;
    }),
  );
}

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0']);
  await new Promise((resolve) => child.on('exit', resolve));
  return child.pid as number;
}

describe('embedded database lock', () => {
  it('gives the database to exactly one of several processes opening it at once, free or left by a dead one', async () => {
    // Each round a new database: no lock yet; the lock of a process that died, as older versions wrote it
    // (a bare pid); an empty one (older versions created the file first and wrote the pid after).
    for (let round = 0; round < 6; round++) {
      const db = join(dir, `pgdata-${round}`);
      const path = `${db}.lock`;
      if (round % 3 === 1) writeFileSync(path, String(await deadPid()));
      else if (round % 3 === 2) writeFileSync(path, '');
      const contenders = Array.from({ length: 6 }, () => contend(db));
      expect(await Promise.all(contenders.map((c) => c.next()))).toEqual(contenders.map(() => 'ready'));
      for (const c of contenders) c.child.stdin?.write('go\n');
      const answers = await Promise.all(contenders.map((c) => c.next()));
      const winners = answers.filter((a) => a === 'got');
      expect(winners, `round ${round}:\n${answers.join('\n')}`).toHaveLength(1);
      const winner = contenders[answers.indexOf('got')] as Contender;
      expect(readFileSync(path, 'utf8')).toContain(String(winner.child.pid));
      for (const answer of answers.filter((a) => a !== 'got')) {
        expect(answer).toContain(`is in use by another etl process (pid ${winner.child.pid}`);
      }
      await end(contenders);
    }
  });

  it('names the holder of another process, and says when this process holds it already', async () => {
    const db = join(dir, 'named');
    const path = `${db}.lock`;
    const holder = contend(db);
    expect(await holder.next()).toBe('ready');
    holder.child.stdin?.write('go\n');
    expect(await holder.next()).toBe('got');
    const pid = holder.child.pid as number;
    const refused = await new EmbeddedLock(db, 'etl query').acquire().then(
      () => 'acquired',
      (error: Error) => error.message,
    );
    expect(refused).toMatch(
      new RegExp(
        `^the embedded database ${db} is in use by another etl process \\(pid ${pid}: contender ${pid}, since `,
      ),
    );
    expect(refused).toContain('the embedded PostgreSQL admits one process at a time');
    await end([holder]);

    const mine = new EmbeddedLock(db, 'etl apply');
    await mine.acquire();
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({ pid: process.pid, host: hostname() });
    await expect(new EmbeddedLock(db, 'etl apply').acquire()).rejects.toThrow(/is already locked by this process/);
    await mine.release();
    await mine.release();
    const again = new EmbeddedLock(db, 'etl apply');
    await again.acquire();
    await again.release();
  });
});
