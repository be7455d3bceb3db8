/**
 * `npm run bench`: runs every benchmark in bench/ in its own process (so peak RSS is its own) and
 * prints their figures. `npm run bench -- parse` runs only those whose file name contains `parse`.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const benches = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.startsWith('_'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();

let failed = 0;
for (const file of benches) {
  process.stdout.write(`\n## ${file.replace(/\.ts$/, '')}\n`);
  const result = spawnSync(process.execPath, [join(here, file)], { stdio: 'inherit' });
  if (result.status !== 0) {
    failed++;
    process.stdout.write(`(${file} exited with ${result.status ?? result.signal})\n`);
  }
}
process.exitCode = failed === 0 ? 0 : 1;
