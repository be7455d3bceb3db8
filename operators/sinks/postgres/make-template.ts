/**
 * `npm run pglite-template`: remakes template/pgdata.br, the data directory new embedded databases start
 * from (see template.ts), with the installed PGlite. Run it after upgrading @electric-sql/pglite: until
 * then new databases are made by PGlite's initdb, slowly, and template.test.ts fails.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPglite } from './pglite-open.ts';
import { packTemplate, pgliteVersion, TEMPLATE_PATH } from './template.ts';

const work = await mkdtemp(join(tmpdir(), 'etl-pglite-template-'));
try {
  const dir = join(work, 'pgdata');
  // Made with PGlite's initdb (no template of this version exists yet), opened once and shut down cleanly.
  await rm(TEMPLATE_PATH, { force: true });
  const { db, made } = await openPglite(dir);
  await db.close();
  if (made !== 'initdb') throw new Error(`expected initdb to make ${dir}, not ${made}`);
  const packed = await packTemplate(dir, pgliteVersion());
  await writeFile(TEMPLATE_PATH, packed);
  console.log(`${TEMPLATE_PATH}: PGlite ${pgliteVersion()}, ${packed.length} bytes`);
} finally {
  await rm(work, { recursive: true, force: true });
}
