/**
 * Stages on worker threads through SIGKILL: file → parse → user_agent on 2 workers → file, killed at varying points
 * and rerun until done. The output holds every line exactly once, in the order of the file: batches leave the
 * workers in order, and only what the sink holds at a committed checkpoint survives a kill.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { startEtl } from '../support/cli.ts';

const LINES = 200_000;
const KILLS = 6;

const dir = mkdtempSync(join(tmpdir(), 'etl-workers-restart-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const sizeOf = (path: string) => (existsSync(path) ? statSync(path).size : 0);

it(`keeps every line exactly once and in order through ${KILLS} SIGKILLs with workers: 2`, async () => {
  const lines: string[] = [];
  for (let i = 0; i < LINES; i++) {
    lines.push(
      `10.0.${(i >> 8) & 255}.${i & 255} - - [10/Oct/2026:13:55:36 +0000] "GET /item?seq=${i} HTTP/1.1" 200 ${i % 5000} "-" "curl/8.${i % 9}.0"`,
    );
  }
  writeFileSync(join(dir, 'input.log'), `${lines.join('\n')}\n`);
  const output = join(dir, 'out', 'records.jsonl');
  const pipeline = join(dir, 'pipeline.yaml');
  writeFileSync(
    pipeline,
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: workers-restart }
spec:
  settings: { data_dir: ${join(dir, '.etl')}, checkpoint_interval_seconds: 0.05, batch_max_records: 500, max_batches_in_flight: 4 }
  sources:
    input: { type: file, paths: ["${join(dir, 'input.log')}"] }
  operators:
    parsed: { type: parse, inputs: [input], format: auto, workers: 2 }
    agents: { type: user_agent, inputs: [parsed], workers: 2 }
  sinks:
    out: { type: file, inputs: [agents], path: ${output}, format: jsonl }
`,
  );
  let kills = 0;
  for (let attempt = 0; attempt < 40; attempt++) {
    const run = startEtl(['apply', '--no-progress', pipeline]);
    let exited = false;
    run.done.then(() => {
      exited = true;
    });
    if (kills < KILLS) {
      const start = sizeOf(output);
      while (!exited && sizeOf(output) <= start) await sleep(5);
      await sleep((attempt * 37) % 120);
      if (!exited) run.child.kill('SIGKILL');
    }
    const result = await run.done;
    if (/outcome\s+succeeded/.test(result.stderr)) break;
    expect(result.signal, result.stderr).toBe('SIGKILL');
    kills++;
  }
  expect(kills).toBeGreaterThan(0);
  const seqs = readFileSync(output, 'utf8')
    .trim()
    .split('\n')
    .map((line) => {
      const record = JSON.parse(line) as { query: string; ua_browser_name?: unknown };
      return Number(/seq=(\d+)/.exec(record.query)?.[1]);
    });
  expect(seqs).toHaveLength(LINES);
  expect(seqs.every((seq, i) => seq === i)).toBe(true);
}, 300_000);
