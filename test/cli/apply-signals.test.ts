/**
 * How `etl apply` reads stop signals: the first drains and checkpoints, a second one aborts, and the same
 * signal delivered twice at once (the terminal and a launcher both pass on a Ctrl-C) counts once.
 */
import { EventEmitter } from 'node:events';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { runApply } from '../../engine/cli/commands/apply.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-signals-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function endlessPipeline(name: string): { file: string; output: string } {
  const file = join(dir, `${name}.yaml`);
  const output = join(dir, `${name}.jsonl`);
  writeFileSync(
    file,
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: ${name} }
spec:
  settings: { data_dir: ${join(dir, name)} }
  sources:
    gen: { type: generator, seed: 1 }
  sinks:
    out: { type: file, inputs: [gen], path: ${output} }
`,
  );
  return { file, output };
}

function stream(): { stream: NodeJS.WriteStream; text: () => string } {
  const pass = new PassThrough();
  let text = '';
  pass.setEncoding('utf8').on('data', (chunk: string) => {
    text += chunk;
  });
  return { stream: pass as unknown as NodeJS.WriteStream, text: () => text };
}

/** Resolves once `path` holds data: the pipeline is past its start. */
async function flowing(path: string): Promise<void> {
  while (!existsSync(path) || statSync(path).size === 0) await new Promise((resolve) => setImmediate(resolve));
}

async function stopWithTwoSignals(
  name: string,
  gapMs: number,
  second: NodeJS.Signals = 'SIGINT',
): Promise<{ code: number; err: string }> {
  const { file, output } = endlessPipeline(name);
  const signals = new EventEmitter();
  let clock = 1_000_000;
  const err = stream();
  const out = stream();
  const run = runApply([file], {
    dryRun: false,
    progress: false,
    logLevel: 'warn',
    logFormat: 'pretty',
    out: out.stream,
    err: err.stream,
    signals,
    now: () => clock,
  });
  await flowing(output);
  signals.emit('SIGINT', 'SIGINT');
  clock += gapMs;
  signals.emit(second, second);
  const code = await run;
  return { code, err: err.text() };
}

describe('stop signals', () => {
  it('counts a signal delivered twice at once as one: the run drains and a follow-type run exits 0', async () => {
    const { code, err } = await stopWithTwoSignals('twice-at-once', 5);
    expect(err).toContain('SIGINT: stopping sources');
    expect(err).not.toContain('aborting now');
    expect(err).toMatch(/outcome\s+stopped/);
    expect(code).toBe(0);
  });

  it('aborts at once on another signal, however soon', async () => {
    const { code, err } = await stopWithTwoSignals('other-signal', 5, 'SIGTERM');
    expect(err).toContain('SIGTERM again: aborting now');
    expect(code).toBe(1);
  });

  it('aborts on a second signal sent later', async () => {
    const { code, err } = await stopWithTwoSignals('twice-apart', 1000);
    expect(err).toContain('SIGINT: stopping sources');
    expect(err).toContain('SIGINT again: aborting now');
    expect(code).toBe(1);
  });
});
