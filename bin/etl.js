#!/usr/bin/env -S node --max-semi-space-size=16 --heap-growing-percent=100 --no-allocation-site-pretenuring
// The `etl` command. Plain JavaScript that any Node npm runs on can load: on a Node older than etl needs it
// runs itself again on a supported one (bin/runtime.js); the CLI proper is TypeScript run by Node directly.
// The first line gives Node the V8 flags of NODE_FLAGS (bin/runtime.js says why); `node bin/etl.js` runs without.
// The CLI runs from its bundle (bin/bundle.js) when one is built from the sources as they are, else from the
// sources; ETL_BUNDLE=0 makes it run the sources, ETL_BUNDLE=<folder> the bundle built there (tests).
import { pathToFileURL } from 'node:url';
import { freshBundle } from './bundle.js';
import { delegate, isSupported, NODE_FLAGS } from './runtime.js';

if (!isSupported(process.versions.node)) {
  delegate(new URL(import.meta.url).pathname, process.argv.slice(2), NODE_FLAGS);
} else {
  const { enableCompileCache } = await import('node:module');
  // Node keeps the compiled (and type-stripped) modules on disk: the next start takes half the time.
  enableCompileCache();
  const choice = process.env.ETL_BUNDLE;
  const bundle = choice === '0' ? undefined : freshBundle(choice || undefined);
  const { main } = await (bundle ? import(pathToFileURL(bundle).href) : import('../engine/cli/main.ts'));
  process.exitCode = await main(process.argv.slice(2));
  // Everything is flushed by now; a handle stuck on a dead peer (a stalled pipe after an abort, say)
  // must not keep the process alive.
  setTimeout(() => process.exit(), 3000).unref();
}
