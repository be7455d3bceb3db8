/**
 * kill -9 through the real CLI: file → parse → anomalies, killed at varying points and rerun until done, finds the
 * anomalies an uninterrupted run finds, each once: baselines, open buckets and the last closed bucket come back
 * from the checkpoint, and the file sink drops what was written after it.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { startEtl } from '../../../test/support/cli.ts';
import { prng } from '../../../test/support/random.ts';

const CLIENTS = 40;
const MINUTES = 150;
const KILLS = 8;

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const T0 = Date.parse('2026-03-01T00:00:00Z');
function clf(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

/** Each client 25–35 requests a minute on two paths; now and then a burst, or a minute of 500s. */
const input = (() => {
  const random = prng(5);
  const out: string[] = [];
  for (let m = 0; m < MINUTES; m++) {
    const minute: Array<[number, string]> = [];
    for (let c = 0; c < CLIENTS; c++) {
      const burst = random() < 0.004;
      const outage = random() < 0.004;
      const n = (burst ? 150 : 25) + Math.floor(random() * 10);
      for (let i = 0; i < n; i++) {
        const at = T0 + m * 60_000 + Math.floor(random() * 60_000);
        const path = i % 3 === 0 ? '/api' : '/';
        minute.push([at, `10.2.0.${c} - - [${clf(at)}] "GET ${path} HTTP/1.1" ${outage ? 500 : 200} 10 "-" "curl/8"`]);
      }
    }
    out.push(...minute.sort((a, b) => a[0] - b[0]).map(([, line]) => line));
  }
  return `${out.join('\n')}\n`;
})();

function setup(): { pipeline: string; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'etl-anomalies-kill-'));
  made.push(dir);
  writeFileSync(join(dir, 'access.log'), input);
  const output = join(dir, 'alerts.jsonl');
  const pipeline = join(dir, 'pipeline.yaml');
  writeFileSync(
    pipeline,
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: rates }
spec:
  settings: { data_dir: ${join(dir, '.etl')}, checkpoint_interval_seconds: 0.05, batch_max_records: 500 }
  sources:
    logs: { type: file, paths: ["${join(dir, 'access.log')}"] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
    rates: { type: anomalies, inputs: [parsed], direction: both, min_count: 5, warmup_buckets: 5 }
  sinks:
    hits: { type: file, inputs: [rates], path: ${join(dir, 'hits.jsonl')}, format: jsonl }
    alerts: { type: file, inputs: [rates.anomalies], path: ${output}, format: jsonl }
`,
  );
  return { pipeline, output };
}

/** The anomalies found, sorted (a run and its replay may find those of one bucket in another order). */
const found = (output: string) =>
  readFileSync(output, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .sort();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const sizeOf = (path: string) => (existsSync(path) ? statSync(path).size : 0);

it(`finds the anomalies of an uninterrupted run, each once, through up to ${KILLS} SIGKILLs`, async () => {
  const straight = setup();
  const once = await startEtl(['apply', '--no-progress', straight.pipeline]).done;
  expect(once.stderr).toMatch(/outcome\s+succeeded/);
  const expected = found(straight.output);
  const directions = expected.map((l) => (JSON.parse(l) as { anomaly_direction: string }).anomaly_direction);
  expect(directions.filter((d) => d === 'up').length).toBeGreaterThan(10);
  expect(directions.filter((d) => d === 'down').length).toBeGreaterThan(10);

  const killed = setup();
  const hits = join(killed.output, '..', 'hits.jsonl');
  let kills = 0;
  let finished = false;
  for (let attempt = 0; attempt < 40 && !finished; attempt++) {
    const run = startEtl(['apply', '--no-progress', killed.pipeline]);
    let exited = false;
    void run.done.then(() => {
      exited = true;
    });
    if (kills < KILLS) {
      const start = sizeOf(hits);
      while (!exited && sizeOf(hits) <= start) await sleep(5);
      await sleep((attempt * 37) % 150);
      if (!exited) run.child.kill('SIGKILL');
    }
    const result = await run.done;
    if (result.signal === 'SIGKILL') kills++;
    else {
      expect(result.stderr).toMatch(/outcome\s+succeeded/);
      finished = true;
    }
  }
  expect(finished).toBe(true);
  expect(kills).toBeGreaterThanOrEqual(KILLS / 2);
  expect(found(killed.output)).toEqual(expected);
});
