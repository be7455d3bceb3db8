/**
 * Which modules a CLI process loads: a hook preloaded into it (`--import`) appends the URL of each module to a file
 * as it is loaded, so that worker threads (which may be terminated without an exit event) record theirs too.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const HOOK_SOURCE = [
  "import { registerHooks } from 'node:module';",
  "import { appendFileSync } from 'node:fs';",
  'registerHooks({ load(url, context, next) {',
  "  appendFileSync(process.env.LOADED_MODULES_FILE, url + '\\n');",
  '  return next(url, context);',
  '} });',
].join('\n');

/** One recorded run: what to give node and the environment, and the URLs it loaded once it has exited. */
export interface LoadRecording {
  readonly nodeArgs: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  loaded(): string[];
}

/** Records the loads of runs, each in a file of its own under `dir` (which the caller removes). */
export class ModuleLoads {
  private readonly dir: string;
  private readonly hook: string;
  private runs = 0;

  constructor(dir: string) {
    this.dir = dir;
    this.hook = join(dir, 'record-loads.mjs');
    writeFileSync(this.hook, HOOK_SOURCE);
  }

  next(): LoadRecording {
    const file = join(this.dir, `loaded-${++this.runs}.txt`);
    writeFileSync(file, '');
    return {
      nodeArgs: ['--import', pathToFileURL(this.hook).href],
      env: { LOADED_MODULES_FILE: file },
      loaded: () => readFileSync(file, 'utf8').split('\n').filter(Boolean),
    };
  }
}
