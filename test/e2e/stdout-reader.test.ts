/**
 * A reader of standard output that goes away (`etl … | head`), through the real CLI. `etl apply` with a stdout sink
 * fails the run (exit 141) with no checkpoint past what it wrote, so that a rerun prints the rest; read-only
 * commands end quietly (exit 0).
 *
 * startEtl's stdout is a socket pair (libuv), not a pipe: what the kernel holds between etl and the reader is bounded
 * by the socket's send buffer (net.core.wmem_default) instead of a pipe's 64 KiB. The tests read that bound.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type CliResult, startEtl } from '../support/cli.ts';

const PG_URL = process.env.ETL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const RECORDS = 200_000;
/** Every line is as long, so that a count of lines is a count of bytes. */
const LINE_BYTES = 32;
const line = (n: number) => `${String(n).padStart(9, '0')} GET /index.html 200`.padEnd(LINE_BYTES - 1, '.');

/** What the kernel may hold between etl and the reader: the socket's send buffer. */
const kernelBuffer = (() => {
  try {
    return Number(readFileSync('/proc/sys/net/core/wmem_default', 'utf8'));
  } catch {
    return 4 * 1024 * 1024;
  }
})();

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

function workspace(): { dir: string; file: string; state: string } {
  const dir = mkdtempSync(join(tmpdir(), 'etl-stdout-'));
  made.push(dir);
  let text = '';
  for (let n = 1; n <= RECORDS; n++) text += `${line(n)}\n`;
  writeFileSync(join(dir, 'in.log'), text);
  const file = join(dir, 'pipeline.yaml');
  writeFileSync(
    file,
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: shown }
spec:
  settings: { data_dir: ${join(dir, '.etl')}, checkpoint_interval_seconds: 0.02 }
  sources:
    logs: { type: file, paths: [${join(dir, 'in.log')}], follow: false }
  sinks:
    out: { type: stdout, inputs: [logs], format: text }
`,
  );
  return { dir, file, state: join(dir, '.etl', 'state', 'shown.json') };
}

/** Runs `args`; the reader goes away at the first chunk of output for which `leave` holds. */
async function readThenLeave(args: string[], leave: () => boolean): Promise<CliResult> {
  const { child, done } = startEtl(args);
  child.stdout?.on('data', () => {
    if (leave()) child.stdout?.destroy();
  });
  return done;
}

/** The record numbers of the complete lines of `stdout`. */
function numbers(stdout: string): number[] {
  const lines = stdout.split('\n');
  lines.pop(); // the last one is cut short, or empty
  const found = lines.map((text) => Number(text.slice(0, 9)));
  const garbled = lines.findIndex((text, i) => text !== line(found[i] as number));
  expect(lines[garbled]).toBeUndefined();
  return found;
}

/**
 * Across a run whose reader left and a rerun read to the end: the first reader saw records 1..r, the rerun prints
 * c+1..N once each, in order. Records r+1..c were with the kernel, unread, when the reader left: the bound.
 */
function checkAcrossRuns(first: CliResult, second: CliResult): { seen: number; resumedAt: number } {
  expect(first.code, first.stderr).toBe(141);
  expect(first.stderr).toMatch(/ERROR: .*standard output was closed by its reader \(EPIPE\)/);
  expect(first.stderr).not.toMatch(/^\s+at /m);
  expect(second.code, second.stderr).toBe(0);
  const seen = numbers(first.stdout);
  expect(seen.every((n, i) => n === i + 1)).toBe(true);
  const rerun = numbers(second.stdout);
  const resumedAt = rerun[0] ?? RECORDS + 1;
  expect(rerun.length).toBe(RECORDS - resumedAt + 1);
  expect(rerun.every((n, i) => n === resumedAt + i)).toBe(true);
  // For the log: how far the reader read, where the rerun began.
  console.info(`reader saw ${seen.length} records; the rerun printed ${resumedAt}..${RECORDS}`);
  const unseen = Math.max(0, resumedAt - 1 - seen.length);
  expect(unseen * LINE_BYTES).toBeLessThanOrEqual(kernelBuffer);
  return { seen: seen.length, resumedAt };
}

describe('a reader of standard output that goes away', () => {
  it('fails etl apply with 141 after the first line, and the rerun prints what was not written', async () => {
    const { file } = workspace();
    const first = await readThenLeave(['apply', file], () => true);
    const second = await readThenLeave(['apply', file], () => false);
    const { seen } = checkAcrossRuns(first, second);
    expect(seen).toBeGreaterThan(0);
  });

  it('resumes after the last checkpoint of the run whose reader left, losing at most what the kernel held', async () => {
    const { file, state } = workspace();
    // The reader leaves once a checkpoint past the start has committed.
    const first = await readThenLeave(['apply', file], () => existsSync(state));
    const second = await readThenLeave(['apply', file], () => false);
    const { resumedAt } = checkAcrossRuns(first, second);
    expect(resumedAt).toBeGreaterThan(1);
  });

  it('ends etl schema quietly (exit 0)', async () => {
    const result = await readThenLeave(['schema'], () => true);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toBe('');
  });

  it('ends etl query quietly (exit 0)', async () => {
    const result = await readThenLeave(
      [
        'query',
        '--url',
        PG_URL,
        '--format',
        'csv',
        'SELECT n, repeat($$x$$, 40) AS pad FROM generate_series(1, 200000) n',
      ],
      () => true,
    );
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toBe('');
  });
});
