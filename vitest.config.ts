import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

const roots = ['engine', 'operators', 'test'];
// Crash loops and soaks (SIGKILL and rerun until done, loads of 200k+ lines through the CLI) are named
// `*.slow.test.ts` and run in their own project: `npm test` runs the rest, `npm run test:slow` these.
const slow = roots.map((root) => `${root}/**/*.slow.test.ts`);

export default defineConfig({
  test: {
    // Tests wait on events, not on time: these only stop a hung test, however loaded the machine.
    testTimeout: 300_000,
    hookTimeout: 300_000,
    // Most files spend their time waiting on the etl processes, servers and databases they start: one worker more
    // than the cores keeps the cores busy (2 cores, the default project: 118 s with 2 workers, 97 s with 3, 90 s
    // with 4). Not more, and capped: each worker may hold an embedded database of 300 MiB or more, and tests that
    // spawn etl slow down together. `npm test -- --maxWorkers=N` overrides it.
    maxWorkers: Math.min(availableParallelism() + 1, 8),
    projects: [
      {
        extends: true,
        test: { name: 'default', include: roots.map((root) => `${root}/**/*.test.ts`), exclude: slow },
      },
      { extends: true, test: { name: 'slow', include: slow, testTimeout: 1_800_000 } },
    ],
  },
});
