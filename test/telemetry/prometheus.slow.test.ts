/**
 * A real Prometheus (Debian package `prometheus`) scraping a running `etl apply`: what it stores is what the
 * pipeline did. Slow: Prometheus starts, and scrapes every second.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { writeLogFile } from '../../operators/sources/generator/write-file.ts';
import { startEtl } from '../support/cli.ts';
import { freePort } from '../support/prometheus.ts';

const LINES = 2000;
const PIPELINE = 'scraped';

interface QueryAnswer {
  status: string;
  data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
}

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

/** Queries Prometheus's HTTP API until `accept` holds for the answer; fails when `dead()` names a reason first. */
async function queryUntil(
  base: string,
  query: string,
  accept: (result: NonNullable<QueryAnswer['data']>['result']) => boolean,
  dead: () => string | undefined,
): Promise<NonNullable<QueryAnswer['data']>['result']> {
  for (;;) {
    const reason = dead();
    if (reason !== undefined) throw new Error(`${reason} before ${query} showed what was expected`);
    try {
      const response = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(query)}`);
      const answer = (await response.json()) as QueryAnswer;
      const result = answer.data?.result ?? [];
      if (answer.status === 'success' && accept(result)) return result;
    } catch {
      // Not listening yet.
    }
    // Prometheus scrapes on its own clock: ask again a little later.
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

it('stores what a running pipeline exposes', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'etl-prometheus-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const log = join(dir, 'access.log');
  await writeLogFile(log, LINES, { format: 'nginx_combined', seed: 5, malformed_ratio: 0 });
  const [metricsPort, prometheusPort] = [await freePort(), await freePort()];

  const pipelineFile = join(dir, 'pipeline.yaml');
  await writeFile(
    pipelineFile,
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: ${PIPELINE} }
spec:
  settings:
    data_dir: ${join(dir, '.etl')}
    checkpoint_interval_seconds: 0.5
  telemetry:
    metrics: { prometheus_port: ${metricsPort} }
  sources:
    logs: { type: file, paths: ["${log}"], follow: true }
  operators:
    parsed: { type: parse, inputs: [logs], format: nginx_combined }
  sinks:
    out: { type: file, inputs: [parsed], path: ${join(dir, 'out.jsonl')} }
`,
  );
  const config = join(dir, 'prometheus.yml');
  await writeFile(
    config,
    `global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: etl
    static_configs: [{ targets: ['127.0.0.1:${metricsPort}'] }]
`,
  );
  await promisify(execFile)('promtool', ['check', 'config', config]);

  const run = startEtl(['apply', pipelineFile]);
  let runEnded: string | undefined;
  void run.done.then((r) => {
    runEnded = `etl apply ended (${r.code}): ${r.stderr}`;
  });
  cleanups.push(async () => {
    run.child.kill('SIGKILL');
    await run.done;
  });

  let prometheusLog = '';
  const prometheus = spawn(
    'prometheus',
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${prometheusPort}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  prometheus.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    prometheusLog = (prometheusLog + chunk).slice(-4000);
  });
  let prometheusEnded: string | undefined;
  prometheus.once('exit', (code) => {
    prometheusEnded = `prometheus exited (${code}): ${prometheusLog}`;
  });
  cleanups.push(async () => {
    prometheus.kill('SIGTERM');
    await exited(prometheus);
  });
  const dead = () => runEnded ?? prometheusEnded;
  const base = `http://127.0.0.1:${prometheusPort}`;

  const received = await queryUntil(
    base,
    `etl_component_received_records_total{pipeline="${PIPELINE}",component_id="logs"}`,
    (result) => result.length === 1 && Number(result[0]?.value[1]) === LINES,
    dead,
  );
  expect(received[0]?.metric).toMatchObject({ job: 'etl', component_kind: 'source', component_type: 'file' });

  const committed = await queryUntil(
    base,
    `etl_sink_committed_records_total{pipeline="${PIPELINE}",component_id="out"}`,
    (result) => Number(result[0]?.value[1]) === LINES,
    dead,
  );
  expect(committed).toHaveLength(1);
  // The freshness histogram answers a quantile query over its buckets.
  const median = await queryUntil(
    base,
    `histogram_quantile(0.5, sum by (le) (etl_freshness_read_seconds_bucket{pipeline="${PIPELINE}"}))`,
    (result) => result.length === 1 && Number.isFinite(Number(result[0]?.value[1])),
    dead,
  );
  expect(Number(median[0]?.value[1])).toBeGreaterThan(0);
  const up = await queryUntil(base, `etl_pipeline_up{pipeline="${PIPELINE}"}`, (r) => r.length === 1, dead);
  expect(Number(up[0]?.value[1])).toBe(1);

  run.child.kill('SIGINT');
  expect((await run.done).code).toBe(0);
});
