/**
 * Through YAML and the CLI: file → parse → anomalies, the anomalies port to a file. Buckets close on the engine's
 * watermark and ticks; a second run over lines appended to the log goes on from the checkpointed baselines.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { etl } from '../../../test/support/cli.ts';
import { prng } from '../../../test/support/random.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-anomalies-e2e-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const T0 = Date.parse('2026-03-01T10:00:00Z');
function clf(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

/**
 * Minutes `from`..`to`: client .1 sends 10–14 requests a minute (150 in minute `burst`), client .2 about 30, all
 * answered 500 in minute `outage`.
 */
function log(from: number, to: number, burst: number, outage: number): string {
  const random = prng(from + 1);
  const lines: Array<[number, string]> = [];
  for (let m = from; m < to; m++) {
    for (const [ip, usual] of [
      ['192.0.2.1', 10 + Math.floor(random() * 5)],
      ['192.0.2.2', 28 + Math.floor(random() * 5)],
    ] as const) {
      const n = ip === '192.0.2.1' && m === burst ? 150 : usual;
      const status = ip === '192.0.2.2' && m === outage ? 500 : 200;
      for (let i = 0; i < n; i++) {
        const at = T0 + m * 60_000 + Math.floor(random() * 60_000);
        lines.push([at, `${ip} - - [${clf(at)}] "GET /login HTTP/1.1" ${status} 100 "-" "curl/8"`]);
      }
    }
  }
  return `${lines
    .sort((a, b) => a[0] - b[0])
    .map(([, line]) => line)
    .join('\n')}\n`;
}

const read = () =>
  readFileSync(join(dir, 'alerts.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

it('flags a burst and an outage, and goes on from its checkpointed baselines in the next run', async () => {
  writeFileSync(join(dir, 'access.log'), log(0, 60, 45, 50));
  writeFileSync(
    join(dir, 'pipeline.yaml'),
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: rates }
spec:
  settings: { checkpoint_interval_seconds: 0.2 }
  sources:
    logs: { type: file, paths: [access.log] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
    rates: { type: anomalies, inputs: [parsed], key_fields: [client_ip, path], direction: both }
  sinks:
    hits: { type: blackhole, inputs: [rates] }
    alerts: { type: file, inputs: [rates.anomalies], path: alerts.jsonl, format: jsonl }
`,
  );
  const first = await etl(['apply', '--no-progress', 'pipeline.yaml'], { cwd: dir });
  expect(first.code, first.stderr).toBe(0);
  const summary = (a: Record<string, unknown>) => [
    a.client_ip,
    a.status_class,
    a.anomaly_bucket_start,
    a.anomaly_direction,
    a.anomaly_observed,
    a.anomaly_baseline_buckets,
  ];
  const minute = (m: number) => new Date(T0 + m * 60_000).toISOString();
  expect(read().map(summary)).toEqual([
    ['192.0.2.1', '2xx', minute(45), 'up', 150, 45],
    // Every request of .2 answered 500: its 2xx key drops to 0 (its 5xx key, new, has no baseline to break from).
    ['192.0.2.2', '2xx', minute(50), 'down', 0, 50],
  ]);

  // Half an hour more, with another burst: the baseline of .1 spans 80 buckets, so it came through the restart.
  appendFileSync(join(dir, 'access.log'), log(60, 90, 80, -1));
  const second = await etl(['apply', '--no-progress', 'pipeline.yaml'], { cwd: dir });
  expect(second.code, second.stderr).toBe(0);
  expect(read().map(summary).slice(2)).toEqual([['192.0.2.1', '2xx', minute(80), 'up', 150, 80]]);
});
