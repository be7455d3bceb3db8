/**
 * `/metrics` of a running `etl apply` (file → parse → validate → postgres on the real PostgreSQL, following its
 * file), scraped over HTTP and parsed with a real parser of the text format.
 */
import { randomBytes } from 'node:crypto';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLineMaker } from '../../operators/sources/generator/lines.ts';
import { ETL_METRIC_NAMES } from '../deploy/metric-names.ts';
import { startEtl } from '../support/cli.ts';
import {
  freePort,
  type PromFamily,
  parseExposition,
  promtoolProblems,
  scrapeText,
  seriesValue,
} from '../support/prometheus.ts';

const PG_URL = process.env.ETL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const FIRST = 1200;
const MORE = 300;

const suffix = randomBytes(4).toString('hex');
const PIPELINE = `metrics_${suffix}`;
const TABLE = `metrics_scrape_${suffix}`;
const STAGE = (id: string, kind: string, type: string) => ({
  pipeline: PIPELINE,
  component_id: id,
  component_kind: kind,
  component_type: type,
});
const LOGS = STAGE('logs', 'source', 'file');
const CHECKED = STAGE('checked', 'transform', 'validate');
const OUT = STAGE('out', 'sink', 'postgres');

let dir: string;
let log: string;
let port: number;
let run: ReturnType<typeof startEtl>;
const lines = createLineMaker({ format: 'nginx_combined', seed: 3, malformed_ratio: 0 });

function someLines(n: number): string {
  let text = '';
  for (let i = 0; i < n; i++) text += `${lines.next()}\n`;
  return text;
}

/** Scrapes until `ready` holds for what `/metrics` shows (the run keeps going meanwhile), or the run ends. */
async function scrapeUntil(
  ready: (families: PromFamily[]) => boolean,
): Promise<{ text: string; families: PromFamily[] }> {
  let exited = false;
  void run.done.then(() => {
    exited = true;
  });
  for (;;) {
    if (exited) throw new Error(`etl apply ended early:\n${(await run.done).stderr}`);
    const text = await scrapeText(port);
    if (text !== undefined) {
      const families = parseExposition(text);
      if (ready(families)) return { text, families };
    }
    // Polls the endpoint (what a Prometheus does), a scrape at a time.
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'etl-metrics-'));
  log = join(dir, 'access.log');
  port = await freePort();
  await writeFile(log, someLines(FIRST));
  const file = join(dir, 'pipeline.yaml');
  await writeFile(
    file,
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: ${PIPELINE} }
spec:
  settings:
    data_dir: ${join(dir, '.etl')}
    checkpoint_interval_seconds: 0.2
    batch_max_records: 200
  telemetry:
    metrics: { prometheus_port: ${port} }
  sources:
    logs: { type: file, paths: ["${log}"], follow: true }
  operators:
    parsed: { type: parse, inputs: [logs], format: nginx_combined }
    checked:
      type: validate
      inputs: [parsed]
      rules:
        - { name: status, status: { field: status } }
        - { name: not_teapot, action: flag, condition: 'record.status != 418' }
  sinks:
    out: { type: postgres, inputs: [checked], url: '${PG_URL}', table: ${TABLE} }
`,
  );
  run = startEtl(['apply', file]);
});

afterAll(async () => {
  run?.child.kill('SIGKILL');
  await run?.done;
  const client = new pg.Client(PG_URL);
  await client.connect();
  await client.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await client.query('DELETE FROM etl_checkpoints WHERE pipeline = $1', [PIPELINE]).catch(() => undefined);
  await client.end();
  await rm(dir, { recursive: true, force: true });
});

describe('/metrics of a running pipeline', () => {
  it('counts what was read, committed and how fresh it is, per stage', async () => {
    const committed = (f: PromFamily[]) => seriesValue(f, 'etl_sink_committed_records_total', OUT) ?? 0;
    const first = await scrapeUntil((f) => committed(f) === FIRST);
    let families = first.families;
    // Prometheus's own parser and linter find nothing to say of the whole exposition.
    expect(await promtoolProblems(first.text)).toEqual([]);
    // Every name the dashboards and alerts of deploy/ may use is exported (but the daemon's own reload failures).
    const exported = new Set([...first.text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    const daemonOnly = new Set(['etl_config_reload_failures_total']);
    expect([...ETL_METRIC_NAMES].filter((name) => !exported.has(name) && !daemonOnly.has(name))).toEqual([]);

    expect(seriesValue(families, 'etl_pipeline_up', { pipeline: PIPELINE })).toBe(1);
    expect(seriesValue(families, 'etl_source_read_lines_total', LOGS)).toBe(FIRST);
    expect(seriesValue(families, 'etl_component_received_records_total', LOGS)).toBe(FIRST);
    expect(seriesValue(families, 'etl_component_received_records_total', OUT)).toBe(FIRST);
    expect(seriesValue(families, 'etl_source_read_bytes_total', LOGS)).toBeGreaterThan(FIRST * 50);
    expect(seriesValue(families, 'etl_source_open_files', LOGS)).toBe(1);
    expect(seriesValue(families, 'etl_source_lag_bytes', LOGS)).toBe(0);
    expect(seriesValue(families, 'etl_source_credit_wait_seconds_count', LOGS)).toBeGreaterThan(0);

    // Every record valid: the data-quality share is 100%.
    expect(seriesValue(families, 'etl_validate_records_total', { ...CHECKED, outcome: 'valid' })).toBe(FIRST);
    expect(seriesValue(families, 'etl_component_batches_total', CHECKED)).toBeGreaterThanOrEqual(FIRST / 200);
    expect(seriesValue(families, 'etl_component_batch_duration_seconds_count', CHECKED)).toBe(
      seriesValue(families, 'etl_component_batches_total', CHECKED),
    );

    // Freshness: every committed record observed, since it was read and since its event time.
    expect(seriesValue(families, 'etl_freshness_read_seconds_count', OUT)).toBe(FIRST);
    expect(seriesValue(families, 'etl_freshness_event_seconds_count', OUT)).toBe(FIRST);
    // Read and committed within a minute on any machine.
    expect(seriesValue(families, 'etl_freshness_read_seconds_bucket', { ...OUT, le: '60' })).toBe(FIRST);
    expect(seriesValue(families, 'etl_freshness_read_seconds_sum', OUT)).toBeGreaterThan(0);
    // The generator's event times are in 2026-01: older than an hour, so past the last bound.
    expect(seriesValue(families, 'etl_freshness_event_seconds_bucket', { ...OUT, le: '3600' })).toBe(0);
    expect(seriesValue(families, 'etl_freshness_event_seconds_bucket', { ...OUT, le: '+Inf' })).toBe(FIRST);

    expect(seriesValue(families, 'etl_sink_write_duration_seconds_count', OUT)).toBeGreaterThan(0);
    expect(seriesValue(families, 'etl_sink_commit_duration_seconds_count', OUT)).toBeGreaterThan(0);
    expect(seriesValue(families, 'etl_sink_circuit_state', OUT)).toBe(0);
    expect(seriesValue(families, 'etl_sink_retries_total', OUT)).toBe(0);
    expect(seriesValue(families, 'etl_checkpoint_duration_seconds_count', { pipeline: PIPELINE })).toBeGreaterThan(0);
    const last = seriesValue(families, 'etl_checkpoint_last_success_timestamp_seconds', { pipeline: PIPELINE }) ?? 0;
    expect(Math.abs(last - Date.now() / 1000)).toBeLessThan(60);
    // Checkpoints every 0.2 s: the last one is recent.
    expect(seriesValue(families, 'etl_checkpoint_age_seconds', { pipeline: PIPELINE })).toBeLessThan(30);
    // The backlog of every edge is there, whatever it is at this instant.
    for (const [from, to] of [
      ['logs', 'parsed'],
      ['parsed', 'checked'],
      ['checked', 'out'],
    ]) {
      expect(
        seriesValue(families, 'etl_edge_inflight_batches', {
          pipeline: PIPELINE,
          from: from as string,
          to: to as string,
        }),
      ).toBeGreaterThanOrEqual(0);
    }
    // prom-client's process metrics ride along.
    expect(seriesValue(families, 'process_resident_memory_bytes')).toBeGreaterThan(0);

    // Lines appended to the followed file are counted as they come.
    await appendFile(log, someLines(MORE));
    families = (await scrapeUntil((f) => committed(f) === FIRST + MORE)).families;
    expect(seriesValue(families, 'etl_source_read_lines_total', LOGS)).toBe(FIRST + MORE);
    expect(seriesValue(families, 'etl_freshness_read_seconds_count', OUT)).toBe(FIRST + MORE);

    run.child.kill('SIGINT');
    const result = await run.done;
    expect(result.code, result.stderr).toBe(0);
  });
});
