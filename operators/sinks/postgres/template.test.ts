import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureDataDir, packTemplate, pgliteVersion, TEMPLATE_PATH, unpackTemplate } from './template.ts';

const noInitdb = async (): Promise<void> => {
  throw new Error('initdb must not run');
};

describe('embedded data directory template', () => {
  let work: string;
  beforeEach(async () => {
    work = await mkdtemp(join(tmpdir(), 'etl-template-'));
  });
  afterEach(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('is made by the installed PGlite (else run `npm run pglite-template`)', async () => {
    const dir = join(work, 'pgdata');
    const manifest = await unpackTemplate(dir);
    expect(manifest?.pglite, `template/pgdata.br does not match PGlite ${pgliteVersion()}`).toBe(pgliteVersion());
    expect((await readFile(join(dir, 'PG_VERSION'), 'utf8')).trim()).toMatch(/^\d+$/);
    // Files keep their size: the zero pages left out of the archive come back.
    const wal = (await readdir(join(dir, 'pg_wal'))).filter((f) => /^[0-9A-F]{24}$/.test(f));
    expect(wal.length).toBeGreaterThan(0);
    expect((await stat(join(dir, 'pg_wal', wal[0] as string))).size).toBe(16 * 1024 * 1024);
    // Not initdb's 7 MB of WAL, which every first run would write and sync again: a checkpoint's few bytes.
    const walBytes = manifest?.files.filter(([path]) => path.startsWith('pg_wal/')).map(([, , , length]) => length);
    expect(walBytes).toHaveLength(1);
    expect(walBytes?.[0]).toBeLessThan(8192);
  });

  it('makes a data directory from the template under a temporary name, once', async () => {
    const dir = join(work, '.etl', 'pgdata');
    await mkdir(join(work, '.etl'));
    // A process killed while making it left this behind; the caller's lock says nobody is making it now.
    await mkdir(join(work, '.etl', 'pgdata.creating-999999'));
    expect(await ensureDataDir(dir, noInitdb)).toBe('template');
    expect(existsSync(join(dir, 'PG_VERSION'))).toBe(true);
    expect(await readdir(join(work, '.etl'))).toEqual(['pgdata']);
    expect(await ensureDataDir(dir, noInitdb)).toBe('existing');
  });

  it('leaves initdb to PGlite when the template was made by another version', async () => {
    const source = join(work, 'source');
    await mkdir(join(source, 'base'), { recursive: true });
    await writeFile(join(source, 'PG_VERSION'), '18\n');
    const other = join(work, 'other.br');
    await writeFile(other, await packTemplate(source, '0.0.0-other'));
    const dir = join(work, 'pgdata');
    // Without initdb (the thread that opens the database runs it), nothing is made.
    expect(await ensureDataDir(dir, undefined, other)).toBe('missing');
    expect(await readdir(work)).toEqual(['other.br', 'source']);
    const made = await ensureDataDir(
      dir,
      async (fresh) => {
        await mkdir(fresh);
        await writeFile(join(fresh, 'PG_VERSION'), 'initdb\n');
      },
      other,
    );
    expect(made).toBe('initdb');
    expect(await readFile(join(dir, 'PG_VERSION'), 'utf8')).toBe('initdb\n');
  });

  it('round-trips a directory: contents, sizes, empty directories and shared contents', async () => {
    const source = join(work, 'source');
    await mkdir(join(source, 'a', 'empty'), { recursive: true });
    await mkdir(join(source, 'b'));
    const page = Buffer.alloc(8192 * 3);
    page.write('header', 0);
    await writeFile(join(source, 'a', 'one'), page);
    await writeFile(join(source, 'b', 'same'), page);
    await writeFile(join(source, 'zeros'), Buffer.alloc(4096));
    await writeFile(join(source, 'PG_VERSION'), '18\n');
    const archive = join(work, 't.br');
    await writeFile(archive, await packTemplate(source, pgliteVersion()));
    const dir = join(work, 'copy');
    await unpackTemplate(dir, archive);
    expect(await readFile(join(dir, 'a', 'one'))).toEqual(page);
    expect(await readFile(join(dir, 'b', 'same'))).toEqual(page);
    expect(await readFile(join(dir, 'zeros'))).toEqual(Buffer.alloc(4096));
    expect(await readdir(join(dir, 'a', 'empty'))).toEqual([]);
  });

  it('refuses a directory that holds files but no database', async () => {
    const dir = join(work, 'pgdata');
    await mkdir(dir);
    await writeFile(join(dir, 'notes.txt'), 'mine');
    await expect(ensureDataDir(dir, noInitdb)).rejects.toThrow(/holds no PostgreSQL database/);
    expect(await readdir(dir)).toEqual(['notes.txt']);
    expect(existsSync(TEMPLATE_PATH)).toBe(true);
  });
});
