/**
 * `etl` runs with the V8 flags of bin/runtime.js's NODE_FLAGS (a bounded young generation, for peak memory): the
 * first line of bin/etl.js names them for a directly executed `etl`, and the launcher passes them on a Node it
 * delegates to.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NODE_FLAGS } from '../../bin/runtime.js';
import { ETL_BIN } from '../support/cli.ts';

describe('node flags', () => {
  it('bin/etl.js starts node with exactly NODE_FLAGS', () => {
    const first = readFileSync(ETL_BIN, 'utf8').split('\n')[0];
    expect(first).toBe(`#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
  });

  it('a directly executed etl has them in its execArgv', () => {
    // Printed by the etl process itself as it exits: what its node was started with.
    const report = "process.on('exit',()=>process.stderr.write('execArgv='+JSON.stringify(process.execArgv)+'\\n'))";
    const run = spawnSync(ETL_BIN, ['--version'], {
      encoding: 'utf8',
      env: {
        ...process.env,
        PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
        NODE_OPTIONS: `--import=data:text/javascript,${encodeURIComponent(report)}`,
      },
    });
    expect(run.status, run.stderr).toBe(0);
    const line = run.stderr.split('\n').find((l) => l.startsWith('execArgv='));
    expect(JSON.parse((line as string).slice('execArgv='.length))).toEqual(NODE_FLAGS);
  });
});
