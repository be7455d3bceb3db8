/**
 * A run that fails before it starts (a stage cannot open: a list file that does not exist) changes no output:
 * a newcomer's copy of a pipeline, failing so, used to empty the file another pipeline had written.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPipelinesFromString } from '../../engine/config/load.ts';
import { runPipeline } from '../../engine/runtime/run.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-failed-start-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a run that fails to start', () => {
  it('leaves the files its sinks would write as they were', async () => {
    const log = join(dir, 'access.log');
    writeFileSync(log, '192.0.2.1 - - [05/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8"\n');
    const out = join(dir, 'out.jsonl');
    const rolled = join(dir, 'out-20260101T000000-000001.jsonl');
    writeFileSync(out, 'written by another pipeline\n');
    writeFileSync(rolled, 'rolled by another pipeline\n');
    const { pipelines, diagnostics } = await loadPipelinesFromString(
      `apiVersion: etl/v1
kind: Pipeline
metadata: { name: copy }
spec:
  settings: { data_dir: ${join(dir, '.etl')} }
  sources:
    logs: { type: file, paths: [${log}] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
    intel: { type: threat_intel, inputs: [parsed], lists: [{ name: blocked, path: ${join(dir, 'missing.txt')} }] }
  sinks:
    out: { type: file, inputs: [intel], path: ${out}, rolling: { max_bytes: 1000000 } }
`,
      join(dir, 'copy.yaml'),
    );
    expect(diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const result = await runPipeline(pipelines[0] as NonNullable<(typeof pipelines)[0]>);
    expect(result.ok).toBe(false);
    expect(result.error?.message).toContain('missing.txt');
    expect(result.stats.errors).toBe(1); // the summary counts the stage that could not open
    expect(readFileSync(out, 'utf8')).toBe('written by another pipeline\n');
    expect(readFileSync(rolled, 'utf8')).toBe('rolled by another pipeline\n');
  });
});
