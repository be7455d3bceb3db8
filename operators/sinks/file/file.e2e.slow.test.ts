/**
 * Through the CLI with real SIGKILLs: gzip output rolled by size, killed at varying points and rerun until
 * done. Every rolled file and the current one must be valid gzip, and together hold each line exactly once.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { startEtl } from '../../../test/support/cli.ts';
import { rolledSequence } from './naming.ts';

const LINES = 200_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function setup(): { dir: string; pipeline: string; outDir: string; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'etl-file-sink-e2e-'));
  const lines: string[] = [];
  for (let i = 0; i < LINES; i++)
    lines.push(`10.0.0.1 - - [10/Oct/2026:13:55:36 +0000] "GET /item?seq=${i} HTTP/1.1" 200 ${i}`);
  writeFileSync(join(dir, 'input.log'), `${lines.join('\n')}\n`);
  const outDir = join(dir, 'out');
  const output = join(outDir, 'lines.jsonl.gz');
  const pipeline = join(dir, 'pipeline.yaml');
  writeFileSync(
    pipeline,
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: file-sink-e2e }
spec:
  settings: { data_dir: ${join(dir, '.etl')}, checkpoint_interval_seconds: 0.05, batch_max_records: 500 }
  sources:
    input: { type: file, paths: ["${join(dir, 'input.log')}"] }
  sinks:
    out: { type: file, inputs: [input], path: ${output}, compression: gzip, rolling: { max_bytes: 65536 } }
`,
  );
  return { dir, pipeline, outDir, output };
}

// The sink renames files while it rolls, so a name listed a moment ago may be gone when stat runs.
const bytesIn = (dir: string) =>
  existsSync(dir)
    ? readdirSync(dir).reduce((sum, name) => sum + (statSync(join(dir, name), { throwIfNoEntry: false })?.size ?? 0), 0)
    : 0;

describe('file sink through the CLI', () => {
  it('gzip output rolled by size survives SIGKILL at any point: every line once, every file valid', async () => {
    const { pipeline, outDir, output } = setup();
    let killed = 0;
    let finished = false;
    for (let attempt = 0; attempt < 30 && !finished; attempt++) {
      const run = startEtl(['apply', '--no-progress', pipeline]);
      let exited = false;
      run.done.then(() => {
        exited = true;
      });
      if (attempt < 5) {
        const start = bytesIn(outDir);
        while (!exited && bytesIn(outDir) <= start) await sleep(5);
        await sleep((attempt * 41) % 100);
        if (!exited) run.child.kill('SIGKILL');
      }
      const result = await run.done;
      if (result.signal === 'SIGKILL') killed++;
      else {
        expect(result.code, result.stderr).toBe(0);
        finished = true;
      }
    }
    expect(finished).toBe(true);
    expect(killed).toBeGreaterThan(0);

    const rolled = readdirSync(outDir)
      .filter((name) => rolledSequence(output, name) !== undefined)
      .sort((a, b) => (rolledSequence(output, a) ?? 0) - (rolledSequence(output, b) ?? 0));
    expect(rolled.length).toBeGreaterThan(1);
    const seen = new Uint8Array(LINES);
    let count = 0;
    for (const file of [...rolled.map((name) => join(outDir, name)), output]) {
      const bytes = readFileSync(file);
      let text: string;
      try {
        text = gunzipSync(bytes).toString('utf8');
      } catch (error) {
        // Which file, and how long: an empty one and one cut short both read "unexpected end of file".
        throw new Error(`${file} (${bytes.length} bytes) is not valid gzip: ${(error as Error).message}`);
      }
      for (const line of text.split('\n')) {
        if (line === '') continue;
        const seq = Number(/seq=(\d+)/.exec((JSON.parse(line) as { message: string }).message)?.[1]);
        expect(seen[seq], `seq=${seq} repeated`).toBe(0);
        seen[seq] = 1;
        count++;
      }
    }
    expect(count).toBe(LINES);
  });
});
