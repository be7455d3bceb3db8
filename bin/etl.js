#!/usr/bin/env node
// The CLI is TypeScript run directly by Node (type stripping, Node >= 22.18).
import { main } from '../engine/cli/main.ts';

process.exitCode = await main(process.argv.slice(2));
// Everything is flushed by now; a handle stuck on a dead peer (a stalled pipe after an abort, say)
// must not keep the process alive.
setTimeout(() => process.exit(), 3000).unref();
