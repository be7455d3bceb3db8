#!/usr/bin/env node
// `node bin/with-node.js <script> [args…]`: runs a script (the test runner, a TypeScript tool) on a Node that
// can run etl, fetching one on an older Node exactly as `etl` does. The npm scripts go through it, so
// `npm test` works on a machine whose Node is older than etl's.
import { delegate, isSupported, runOn } from './runtime.js';

const [script, ...args] = process.argv.slice(2);
if (!script) {
  process.stderr.write('usage: node bin/with-node.js <script> [args…]\n');
  process.exit(2);
}
if (isSupported(process.versions.node)) runOn(process.execPath, script, args);
else delegate(script, args);
