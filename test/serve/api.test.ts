/**
 * The REST API of `etl serve` on loopback: pipelines applied from YAML, dry runs with the diagnostics of
 * `etl validate`, pause/resume/stop/delete, two pipelines in separate failure domains, `etl apply|diff
 * --server` against it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyToServer } from '../../engine/serve/client.ts';
import { etl } from '../support/cli.ts';
import { appendLines, daemon, jsonLines, pipeline, type TestDaemon, until } from './helpers.ts';

let dir: string;
let d: TestDaemon;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'etl-serve-api-'));
  d = await daemon();
});
afterAll(async () => {
  await d?.shutdown();
  await rm(dir, { recursive: true, force: true });
});

function generated(name: string, extra: string, sink = 'blackhole'): string {
  return `apiVersion: etl/v1
kind: Pipeline
metadata: { name: ${name} }
spec:
  settings: { data_dir: ${join(dir, '.etl')}, checkpoint_interval_seconds: 0.2 }
  sources:
    logs: { type: generator, rate_per_second: 2000, seed: 1, ${extra} }
  operators:
    parsed: { type: parse, inputs: [logs], format: nginx_combined, on_error: fail }
  sinks:
    out: { type: ${sink}, inputs: [parsed] }
`;
}

class Lines {
  text = '';
  write(chunk: string) {
    this.text += chunk;
  }
}

describe('etl serve API', () => {
  it('has health, an OpenAPI document and its page', async () => {
    expect(await d.call('GET', '/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
    expect(await d.call('GET', '/readyz')).toEqual({
      status: 200,
      body: { ready: true, configScanned: true, pipelines: [] },
    });
    const openapi = (await d.call('GET', '/docs/json')).body;
    expect(Object.keys(openapi.paths)).toEqual(
      expect.arrayContaining(['/pipelines', '/pipelines/{name}', '/pipelines/{name}/pause', '/readyz', '/metrics']),
    );
    expect((await d.call('GET', '/docs/')).status).toBe(200);
  });

  it('listens on loopback only without a security layer, and says so', async () => {
    const open = await daemon({ host: '0.0.0.0' });
    try {
      expect(open.host).toBe('127.0.0.1');
      expect(open.log()).toContain('no security layer (API keys, TLS) is configured: listening on 127.0.0.1');
      expect((await open.call('GET', '/healthz')).status).toBe(200);
    } finally {
      await open.shutdown();
    }
  });

  it('refuses bad names and unknown pipelines', async () => {
    expect((await d.call('GET', '/pipelines/..%2F..%2Fetc')).status).toBe(400);
    expect((await d.call('POST', '/pipelines/a.b/pause')).status).toBe(400);
    expect(await d.call('GET', '/pipelines/nope')).toMatchObject({ status: 404 });
    expect((await d.call('POST', '/pipelines', { yml: 'x' })).status).toBe(400);
  });

  it('dry-runs with the diagnostics of etl validate, and changes nothing', async () => {
    const bad = generated('dry', 'rate_per_sekond: 3');
    const refused = await d.call('POST', '/pipelines?dryRun=true', bad);
    expect(refused.status).toBe(422);
    expect(refused.body.diagnostics[0]).toMatchObject({ file: 'api', line: 7, code: 'ETL_CFG_UNKNOWN_KEY' });
    expect(refused.body.diagnostics[0].text).toMatch(/^api:7:\d+: error ETL_CFG_UNKNOWN_KEY/);
    const planned = await d.call('POST', '/pipelines?dryRun=true', { yaml: generated('dry', 'count: 10') });
    expect(planned).toMatchObject({ status: 200, body: { valid: true, dryRun: true } });
    expect(planned.body.pipelines).toEqual([
      { name: 'dry', action: 'create', changes: [{ path: '', change: 'added' }] },
    ]);
    expect((await d.call('GET', '/pipelines')).body).toEqual([]);
  });

  it('runs two pipelines apart: one failing again and again leaves the other running', async () => {
    const good = await d.call('POST', '/pipelines', generated('good', 'malformed_ratio: 0'));
    expect(good.body.pipelines[0]).toMatchObject({ name: 'good', action: 'create', status: 'running' });
    // Every tenth line is broken and the parser is told to fail on one: it fails, and is started again.
    await d.call('POST', '/pipelines', generated('bad', 'malformed_ratio: 0.1'));
    const bad = await until(async () => {
      const p = (await d.call('GET', '/pipelines/bad')).body;
      return p.runs >= 3 && p;
    }, 'the failing pipeline to be restarted twice');
    expect(bad.lastError).toContain('stage parsed rejected a record (on_error: fail)');
    expect(bad.lastErrors.some((e: { level: string }) => e.level === 'error')).toBe(true);
    const before = (await d.call('GET', '/pipelines/good')).body;
    expect(before).toMatchObject({ status: 'running', runs: 1 });
    await until(
      async () => (await d.call('GET', '/pipelines/good')).body.stats.recordsIn > before.stats.recordsIn + 500,
      'the good pipeline to read on',
    );
    expect((await d.call('GET', '/pipelines/good')).body).toMatchObject({ status: 'running', runs: 1 });
    const ready = await d.call('GET', '/readyz');
    expect(ready.status === 503 || ready.body.pipelines.length === 0).toBe(true);

    const detail = (await d.call('GET', '/pipelines/good')).body;
    expect(detail.yaml).toContain('name: good');
    expect(detail.graph.edges).toEqual([
      { from: 'logs', port: 'default', to: 'parsed' },
      { from: 'parsed', port: 'default', to: 'out' },
    ]);
    expect(detail.graph.mermaid).toContain('flowchart LR');
    const metrics = (await d.call('GET', '/metrics')).body as string;
    expect(metrics).toMatch(/etl_component_received_records_total\{pipeline="good",component_id="logs"/);
    expect(metrics).toMatch(/etl_component_received_records_total\{pipeline="bad",component_id="logs"/);
    // `etl tap` reads the daemon's /tap as it reads a single run's metrics server.
    const tapped = await etl(['tap', 'parsed', '--pipeline', 'good', '--url', d.url, '--limit', '2']);
    expect(tapped.code, tapped.stderr).toBe(0);
    expect(
      tapped.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).pipeline),
    ).toEqual(['good', 'good']);

    expect(await d.call('DELETE', '/pipelines/bad')).toMatchObject({ status: 200, body: { status: 'deleted' } });
    expect(await d.call('DELETE', '/pipelines/good')).toMatchObject({ status: 200 });
    expect((await d.call('GET', '/pipelines')).body).toEqual([]);
  });

  it('pauses, resumes and stops a pipeline through its checkpoint; counts its dead letters', async () => {
    const log = join(dir, 'pause.log');
    const out = join(dir, 'pause.jsonl');
    await writeFile(log, '');
    await appendLines(log, 0, 500);
    await writeFile(`${log}`, 'not an access log line\n', { flag: 'a' });
    const doc = pipeline({ name: 'paused', dataDir: join(dir, '.etl'), log, sink: `type: file, path: ${out}` }).replace(
      '  sinks:\n',
      `  sinks:\n    rejects: { type: file, inputs: [parsed.dead_letter], path: ${join(dir, 'rejects.jsonl')} }\n`,
    );
    expect((await d.call('POST', '/pipelines', doc)).body.pipelines[0].status).toBe('running');
    await until(async () => (await jsonLines(out)).lines === 500, '500 lines');
    expect(await d.call('POST', '/pipelines/paused/pause')).toEqual({
      status: 200,
      body: { name: 'paused', status: 'paused' },
    });
    await appendLines(log, 500, 100);
    expect((await d.call('POST', '/pipelines/paused/resume')).body.status).toBe('running');
    await until(async () => (await jsonLines(out)).lines === 600, 'the lines written while paused');
    expect((await d.call('POST', '/pipelines/paused/stop')).body.status).toBe('stopped');
    expect((await d.call('GET', '/pipelines/paused/dead-letters')).body).toEqual({
      pipeline: 'paused',
      rejected: 1,
      sinks: { rejects: 1 },
    });
    expect(await d.call('GET', '/readyz')).toEqual({
      status: 200,
      body: { ready: true, configScanned: true, pipelines: [] },
    });
    expect((await d.call('POST', '/pipelines/paused/resume')).body.status).toBe('running');
    expect(await jsonLines(out)).toEqual({ lines: 600, distinct: 600 });
    await d.call('DELETE', '/pipelines/paused');
  });

  it('leaves a completed pipeline completed: pause, stop and resume neither rerun it nor drop its stats', async () => {
    expect((await d.call('POST', '/pipelines', generated('finished', 'count: 300, malformed_ratio: 0'))).status).toBe(
      200,
    );
    const before = await until(async () => {
      const body = (await d.call('GET', '/pipelines/finished')).body;
      return body.status === 'completed' ? body : undefined;
    }, 'completion');
    for (const action of ['pause', 'stop', 'resume']) {
      expect(await d.call('POST', `/pipelines/finished/${action}`)).toEqual({
        status: 200,
        body: { name: 'finished', status: 'completed' },
      });
    }
    const after = (await d.call('GET', '/pipelines/finished')).body;
    expect(after.runs).toBe(before.runs);
    expect(after.stats).toEqual(before.stats);
    await d.call('DELETE', '/pipelines/finished');
  });

  it('refuses a version that cannot start, or whose checkpoint does not fit: the running one keeps running', async () => {
    const log = join(dir, 'refused.log');
    const out = join(dir, 'refused.jsonl');
    await writeFile(log, '');
    await appendLines(log, 0, 300);
    const doc = (sink: string) =>
      pipeline({ name: 'keep', dataDir: join(dir, '.etl'), log, sink: `type: file, path: ${sink}` });
    const created = await d.call('POST', '/pipelines', doc(out));
    expect(created.body.pipelines[0]).toMatchObject({ action: 'create', status: 'running' });
    await until(async () => (await jsonLines(out)).lines === 300, '300 lines');
    const good = (await d.call('GET', '/pipelines/keep')).body;

    // The new sink cannot open (its directory is a file): the old version drained, so it is started again.
    const broken = await d.call('POST', '/pipelines', doc(join(log, 'out.jsonl')));
    expect(broken.status).toBe(409);
    expect(broken.body.pipelines[0]).toMatchObject({ name: 'keep', action: 'refused', status: 'running' });
    expect(broken.body.pipelines[0].message).toContain('stage out (open)');
    const after = (await d.call('GET', '/pipelines/keep')).body;
    expect(after).toMatchObject({ status: 'running', version: good.version, runningVersion: good.version, runs: 3 });
    expect(after.lastRefusal.message).toContain('stage out (open)');

    // A renamed source would read everything again: refused before the running version is touched.
    const renamed = await d.call('POST', '/pipelines', doc(out).replaceAll('logs', 'lines'));
    expect(renamed.status).toBe(409);
    expect(renamed.body.pipelines[0].message).toContain('--rename logs=lines');
    expect((await d.call('GET', '/pipelines/keep')).body).toMatchObject({ runs: 3, runningVersion: good.version });

    const metrics = (await d.call('GET', '/metrics')).body as string;
    expect(metrics).toContain('etl_config_reload_failures_total{pipeline="keep"} 2');
    await appendLines(log, 300, 100);
    await until(async () => (await jsonLines(out)).lines === 400, 'lines after the refusals');
    expect(await jsonLines(out)).toEqual({ lines: 400, distinct: 400 });
    await d.call('DELETE', '/pipelines/keep');
  });

  it('etl apply --server twice changes nothing the second time; etl diff tells what would change', async () => {
    const files = join(dir, 'files');
    await import('node:fs/promises').then((fs) => fs.mkdir(files));
    await writeFile(join(files, 'one.yaml'), generated('one', 'malformed_ratio: 0'));
    await writeFile(join(files, 'two.yaml'), generated('two', 'malformed_ratio: 0'));
    const out = new Lines();
    const err = new Lines();
    expect(await applyToServer([files], 'apply', { server: d.url, out, err })).toBe(0);
    expect(out.text).toBe('one: created (running)\ntwo: created (running)\n');
    out.text = '';
    expect(await applyToServer([files], 'apply', { server: d.url, out, err })).toBe(0);
    expect(out.text).toBe('one: unchanged (running)\ntwo: unchanged (running)\n');
    expect((await d.call('GET', '/pipelines/one')).body.runs).toBe(1);

    await writeFile(join(files, 'two.yaml'), generated('two', 'malformed_ratio: 0').replace('0.2 }', '0.5 }'));
    const diff = await etl(['diff', files, '--server', d.url]);
    expect(diff.code, diff.stderr).toBe(0);
    expect(diff.stdout).toBe('one: unchanged\ntwo: would be reloaded\n  ~ settings.checkpointIntervalMs\n');
    expect((await d.call('GET', '/pipelines/two')).body.runs).toBe(1);

    await writeFile(join(files, 'two.yaml'), 'apiVersion: etl/v1\nkind: Pipeline\nmetadata: { name: two }\n');
    const refused = await etl(['apply', files, '--server', d.url]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('two.yaml:');
    expect(refused.stderr).toContain('nothing was applied');
    expect((await d.call('GET', '/pipelines/two')).body.runs).toBe(1);
    await d.call('DELETE', '/pipelines/one');
    await d.call('DELETE', '/pipelines/two');
  });
});
