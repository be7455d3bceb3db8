/** `etl validate` through bin/etl.js and the real operator registry, as a user runs it. */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const run = promisify(execFile);

async function etl(...args: string[]): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await run(process.execPath, ['bin/etl.js', ...args], { cwd: ROOT });
    return { code: 0, stdout };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '' };
  }
}

describe('etl validate (end to end)', () => {
  it('accepts a pipeline of real operators', async () => {
    const { code, stdout } = await etl('validate', '--format', 'json', 'test/config/fixtures/real/generated.yaml');
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual({ valid: true, pipelines: ['generated-to-file'], diagnostics: [], skipped: [] });
  });

  it('exits 1 and prints positions for a broken one', async () => {
    const { code, stdout } = await etl('validate', 'test/config/fixtures/broken.yaml');
    expect(code).toBe(1);
    expect(stdout).toContain('test/config/fixtures/broken.yaml:6:29: error ETL_CFG_UNKNOWN_KEY: unknown key `cuont`');
    expect(stdout.trimEnd().split('\n').at(-1)).toBe('2 errors, 1 warning');
  });
});
