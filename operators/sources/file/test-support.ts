/**
 * File-source test helpers: scratch directories and the source's options with test timers. The source harness
 * itself (context, collecting output) is test/support/source-output.ts, re-exported here for the file tests.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import type { FileSourceOptions } from './schema.ts';

export * from '../../../test/support/source-output.ts';

/**
 * A scratch directory per call, under one root made for the test file (`etl-file-<name>-`) and removed after
 * its tests.
 */
export function scratchDirs(name: string): () => string {
  const root = mkdtempSync(join(tmpdir(), `etl-file-${name}-`));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  let dirs = 0;
  return () => {
    const dir = join(root, `t${dirs++}`);
    mkdirSync(dir, { recursive: true });
    return dir;
  };
}

/** The source's options with every default the tests rely on, short timers for following. */
export function sourceOptions(paths: string[], extra: Partial<FileSourceOptions> = {}): FileSourceOptions {
  return {
    paths,
    exclude: [],
    follow: false,
    start_at: 'beginning',
    poll_interval_ms: 20,
    max_line_bytes: 65536,
    partial_line_timeout_ms: 300,
    rotate_wait_ms: 150,
    max_open_files: 256,
    fingerprint_bytes: 256,
    ...extra,
  };
}
