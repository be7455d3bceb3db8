#!/usr/bin/env node
// The CLI is TypeScript run directly by Node (type stripping, Node >= 22.18).
import { enableCompileCache } from 'node:module';

// Node keeps the compiled (and type-stripped) modules on disk: the next start takes half the time.
enableCompileCache();
const { main } = await import('../engine/cli/main.ts');

process.exitCode = await main(process.argv.slice(2));
// Everything is flushed by now; a handle stuck on a dead peer (a stalled pipe after an abort, say)
// must not keep the process alive.
setTimeout(() => process.exit(), 3000).unref();
