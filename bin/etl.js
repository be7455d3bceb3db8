#!/usr/bin/env node
// The `etl` command. Plain JavaScript that any Node npm runs on can load: on a Node older than etl needs it
// runs itself again on a supported one (bin/runtime.js); the CLI proper is TypeScript run by Node directly.
import { delegate, isSupported } from './runtime.js';

if (!isSupported(process.versions.node)) {
  delegate(new URL(import.meta.url).pathname, process.argv.slice(2));
} else {
  const WASM_FLAG = '--liftoff-only';
  // The embedded PostgreSQL is 9 MB of WebAssembly. V8 runs it as compiled by Liftoff, then recompiles its
  // hot functions with TurboFan in the background: ~500 MiB of memory on top, a core taken from parsing,
  // and an exit that waits seconds for compile jobs, for code measured no faster over a 200k-line load
  // (10–25% faster on COPY after a million rows). Liftoff only, then. V8 flags cannot change once V8 runs:
  // the commands that may open that database replace this process with one that has the flag (same pid, so
  // signals and supervisors see no difference), which costs ~80 ms; not with DATABASE_URL set, which sends
  // sinks and queries to a server. Where execve is missing (Windows), they run as they are.
  if (
    ['apply', 'query'].includes(process.argv[2] ?? '') &&
    !process.env.DATABASE_URL &&
    !process.execArgv.includes(WASM_FLAG) &&
    typeof process.execve === 'function'
  ) {
    process.execve(process.execPath, [process.execPath, WASM_FLAG, ...process.execArgv, ...process.argv.slice(1)]);
  }
  const { enableCompileCache } = await import('node:module');
  // Node keeps the compiled (and type-stripped) modules on disk: the next start takes half the time.
  enableCompileCache();
  const { main } = await import('../engine/cli/main.ts');
  process.exitCode = await main(process.argv.slice(2));
  // Everything is flushed by now; a handle stuck on a dead peer (a stalled pipe after an abort, say)
  // must not keep the process alive.
  setTimeout(() => process.exit(), 3000).unref();
}
