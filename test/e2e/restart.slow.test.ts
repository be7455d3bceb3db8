/**
 * Crash and stop in the middle of a file → file run, then rerun until done: the output holds every
 * input line exactly once. SIGTERM drains and checkpoints; SIGKILL loses the process at any point,
 * and the rerun resumes from the last checkpoint while the file sink truncates what came after it.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { etl, startEtl } from '../support/cli.ts';

const LINES = 300_000;

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

function setup(): { dir: string; pipeline: string; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'etl-restart-'));
  made.push(dir);
  const lines: string[] = [];
  for (let i = 0; i < LINES; i++) {
    lines.push(
      `10.0.${(i >> 8) & 255}.${i & 255} - - [10/Oct/2026:13:55:36 +0000] "GET /item?seq=${i} HTTP/1.1" 200 ${i % 5000}`,
    );
  }
  writeFileSync(join(dir, 'input.log'), `${lines.join('\n')}\n`);
  const output = join(dir, 'out', 'lines.jsonl');
  const pipeline = join(dir, 'pipeline.yaml');
  writeFileSync(
    pipeline,
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: restart }
spec:
  settings: { data_dir: ${join(dir, '.etl')}, checkpoint_interval_seconds: 0.05, batch_max_records: 500, max_batches_in_flight: 4 }
  sources:
    input: { type: file, paths: ["${join(dir, 'input.log')}"] }
  sinks:
    out: { type: file, inputs: [input], path: ${output}, format: jsonl }
`,
  );
  return { dir, pipeline, output };
}

function assertExactlyOnce(output: string): void {
  const seen = new Uint8Array(LINES);
  const text = readFileSync(output, 'utf8');
  let count = 0;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const message = (JSON.parse(line) as { message: string }).message;
    const seq = Number(/seq=(\d+)/.exec(message)?.[1]);
    expect(seen[seq], `line seq=${seq} repeated`).toBe(0);
    seen[seq] = 1;
    count++;
  }
  expect(count).toBe(LINES);
}

async function interruptUntilDone(signal: NodeJS.Signals, pipeline: string, output: string): Promise<number> {
  let interrupted = 0;
  for (let attempt = 0; attempt < 40; attempt++) {
    const run = startEtl(['apply', '--no-progress', pipeline]);
    let exited = false;
    run.done.then(() => {
      exited = true;
    });
    if (attempt < 6) {
      // Interrupt once output is flowing (the process is past start-up), at a varying point after.
      const start = sizeOf(output);
      while (!exited && sizeOf(output) <= start) await sleep(5);
      await sleep((attempt * 37) % 120);
      if (!exited) run.child.kill(signal);
    }
    const result = await run.done;
    // A signal that lands after the last line was read finds a run that completes (or a process already
    // exiting, which it may still kill): the run is done either way.
    if (/outcome\s+succeeded/.test(result.stderr)) return interrupted;
    interrupted++;
    if (signal === 'SIGTERM') {
      // A finite run cut short by a signal did not do its job: 128 + 15, as a shell reports it.
      expect(result.code, result.stderr).toBe(143);
      expect(result.stderr).toMatch(/outcome\s+stopped; the next run resumes/);
    } else expect(result.signal).toBe('SIGKILL');
  }
  throw new Error('the pipeline never finished');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const sizeOf = (path: string) => (existsSync(path) ? statSync(path).size : 0);

describe('restart', () => {
  it('SIGTERM mid-file drains and checkpoints; reruns complete every line exactly once', async () => {
    const { pipeline, output } = setup();
    const interrupted = await interruptUntilDone('SIGTERM', pipeline, output);
    expect(interrupted).toBeGreaterThan(0);
    assertExactlyOnce(output);
  });

  it('SIGKILL mid-file loses nothing and repeats nothing after reruns', async () => {
    const { pipeline, output } = setup();
    const interrupted = await interruptUntilDone('SIGKILL', pipeline, output);
    expect(interrupted).toBeGreaterThan(0);
    assertExactlyOnce(output);
  });

  it('a rerun after a complete run adds nothing', async () => {
    const { pipeline, output } = setup();
    expect((await etl(['apply', '--no-progress', pipeline])).code).toBe(0);
    const before = readFileSync(output, 'utf8');
    expect((await etl(['apply', '--no-progress', pipeline])).code).toBe(0);
    expect(readFileSync(output, 'utf8')).toBe(before);
    assertExactlyOnce(output);
  });
});
