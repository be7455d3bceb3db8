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
    // Integration suites spawn processes and databases; two cores on CI.
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: { name: 'default', include: roots.map((root) => `${root}/**/*.test.ts`), exclude: slow },
      },
      { extends: true, test: { name: 'slow', include: slow, testTimeout: 1_800_000 } },
    ],
  },
});
