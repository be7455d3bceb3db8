/**
 * The entry of a worker thread (worker-main.ts does the work). Node keeps the type-stripped modules of each thread
 * in its compile cache only when asked to in that thread, before they load: the second start of a worker then takes
 * a fraction of the first.
 */
import { enableCompileCache } from 'node:module';

enableCompileCache();
await import('./worker-main.ts');
