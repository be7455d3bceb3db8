/**
 * Two runs of one pipeline at once (an overlapping cron job, a second terminal): the second refuses at once
 * and names the first, or waits for it with --wait; either way every record lands exactly once.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { etl, startEtl } from '../support/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-concurrent-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const COUNT = 400_000;

function setup(name: string): { file: string; output: string } {
  const file = join(dir, `${name}.yaml`);
  const output = join(dir, `${name}.jsonl`);
  writeFileSync(
    file,
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: ${name} }
spec:
  settings: { data_dir: ${join(dir, '.etl')} }
  sources:
    gen: { type: generator, count: ${COUNT}, seed: 7, with_sequence: true, malformed_ratio: 0 }
  sinks:
    out: { type: file, inputs: [gen], path: ${output} }
`,
  );
  return { file, output };
}

/** Resolves once the first run has written output: it holds the pipeline by then. */
async function flowing(path: string): Promise<void> {
  while (!existsSync(path) || statSync(path).size === 0) await new Promise((resolve) => setTimeout(resolve, 20));
}

function sequences(path: string): number[] {
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((line) => Number((JSON.parse(line) as { message: string }).message.match(/[?&]seq=(\d+)/)?.[1]));
}

function assertExactlyOnce(path: string): void {
  const seen = sequences(path);
  expect(seen).toHaveLength(COUNT);
  expect(new Set(seen).size).toBe(COUNT);
}

describe('two runs of one pipeline at once', () => {
  it('the second refuses at once, naming the first; the first loads everything once', async () => {
    const { file, output } = setup('twice');
    const first = startEtl(['apply', '--no-progress', file]);
    await flowing(output);
    const second = await etl(['apply', '--no-progress', file]);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`etl apply of pipeline twice (pid ${first.child.pid}, since `);
    expect(second.stderr).toContain('one run of a pipeline at a time');
    const done = await first.done;
    expect(done.code, done.stderr).toBe(0);
    assertExactlyOnce(output);
  });

  it('with --wait, the second starts once the first is done and adds nothing', async () => {
    const { file, output } = setup('waits');
    const first = startEtl(['apply', '--no-progress', file]);
    await flowing(output);
    const second = startEtl(['apply', '--no-progress', '--wait', file], { env: { ETL_LOG_LEVEL: 'info' } });
    const [a, b] = await Promise.all([first.done, second.done]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(b.stderr).toContain(`waiting for etl apply of pipeline waits (pid ${first.child.pid}`);
    expect(b.stderr).toMatch(/records read\s+0\b/);
    assertExactlyOnce(output);
  });
});
