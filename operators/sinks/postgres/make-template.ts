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
  // initdb leaves 7 MB of its WAL in the segment a new database starts from, written (and synced) at every
  // first run. Started again on a fresh segment, with the old one removed rather than recycled (a recycled
  // segment keeps its old bytes), the template holds only a checkpoint's few bytes of WAL.
  const again = (await openPglite(dir, undefined, ['wal_recycle=off'])).db;
  await again.query('SELECT pg_switch_wal()');
  await again.exec('CHECKPOINT');
  await again.close();
  const packed = await packTemplate(dir, pgliteVersion());
  await writeFile(TEMPLATE_PATH, packed);
  console.log(`${TEMPLATE_PATH}: PGlite ${pgliteVersion()}, ${packed.length} bytes`);
} finally {
  await rm(work, { recursive: true, force: true });
}
