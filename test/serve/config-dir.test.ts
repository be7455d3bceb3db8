/**
 * GitOps through the daemon: a config directory's files start, reload and stop pipelines; an invalid change
 * is refused while the running version keeps running; a file saved unchanged does nothing.
 */
import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendLines, daemon, jsonLines, pipeline, type TestDaemon, until } from './helpers.ts';

let dir: string;
let server: TestDaemon | undefined;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'etl-serve-dir-'));
});
afterAll(async () => {
  await server?.shutdown();
  await rm(dir, { recursive: true, force: true });
});

describe('etl serve --config-dir', () => {
  it('starts, reloads and stops pipelines as the files say, and refuses an invalid change', async () => {
    const conf = join(dir, 'conf');
    const log = join(dir, 'access.log');
    const out = join(dir, 'out.jsonl');
    const file = join(conf, 'web.yaml');
    const doc = (checkpointSeconds: number) =>
      pipeline({
        name: 'web',
        dataDir: join(dir, '.etl'),
        log,
        sink: `type: file, path: ${out}`,
        checkpointSeconds,
      });
    await writeFile(log, '');
    await appendLines(log, 0, 1000);
    await mkdir(conf);
    await writeFile(file, doc(0.2));
    server = await daemon({ configDir: conf });
    const d = server;

    // Started by the first scan, before startDaemon returned.
    const [first] = (await d.call('GET', '/pipelines')).body;
    expect(first).toMatchObject({ name: 'web', status: 'running', owner: 'file:web.yaml', runs: 1 });
    await until(async () => (await jsonLines(out)).lines === 1000, '1000 lines written');

    // A change: noticed by the watch, the old version drains, the new one resumes from its checkpoint.
    await writeFile(file, doc(0.3));
    const reloaded = await until(async () => {
      const [p] = (await d.call('GET', '/pipelines')).body;
      return p.runs === 2 && p.status === 'running' && p.runningVersion !== first.runningVersion && p;
    }, 'the reload');
    await appendLines(log, 1000, 500);
    await until(async () => (await jsonLines(out)).lines >= 1500, '1500 lines written');
    expect(await jsonLines(out)).toEqual({ lines: 1500, distinct: 1500 });

    // Saved again unchanged, or with only a comment more: nothing restarts.
    await writeFile(file, `# reviewed\n${doc(0.3)}`);
    await d.configDir?.scan();
    expect((await d.call('GET', '/pipelines')).body[0]).toMatchObject({ runs: 2, version: reloaded.version });

    // An invalid change: refused with line and column, counted, and the running version keeps running.
    await writeFile(file, doc(0.3).replace('format: auto', 'format: auto, colour: blue'));
    const refused = await until(async () => {
      const config = (await d.call('GET', '/config')).body;
      return config.files[0]?.valid === false && config.files[0];
    }, 'the refusal');
    expect(refused.diagnostics[0].text).toMatch(/web\.yaml:12:\d+: error ETL_CFG_UNKNOWN_KEY: unknown key `colour`/);
    expect(d.log()).toContain('change refused (1 error); web keep running the previous version');
    const metrics = (await d.call('GET', '/metrics')).body as string;
    expect(metrics).toContain('etl_config_reload_failures_total{pipeline="web"} 1');
    expect((await d.call('GET', '/pipelines')).body[0]).toMatchObject({ status: 'running', runs: 2 });
    // Emptied (as an editor may leave it for a moment): a change refused, not a removal.
    await writeFile(file, '');
    await until(async () => {
      const config = (await d.call('GET', '/config')).body;
      return /holds no pipeline document/.test(config.files[0]?.diagnostics[0]?.message ?? '');
    }, 'the emptied file refused');
    expect((await d.call('GET', '/pipelines')).body[0]).toMatchObject({ status: 'running', runs: 2 });
    await appendLines(log, 1500, 200);
    await until(async () => (await jsonLines(out)).lines >= 1700, 'lines after the refused change');

    // Removed: drained, checkpointed, gone; its lock released.
    await unlink(file);
    await until(async () => (await d.call('GET', '/pipelines')).body.length === 0, 'the pipeline to stop');
    expect(existsSync(join(dir, '.etl', 'state', 'web.lock'))).toBe(false);
    expect(await jsonLines(out)).toEqual({ lines: 1700, distinct: 1700 });

    // Back again: it resumes from the checkpoint the removal wrote, and reads only what is new.
    await writeFile(file, doc(0.2));
    await until(async () => (await d.call('GET', '/pipelines')).body[0]?.status === 'running', 'the restart');
    await appendLines(log, 1700, 300);
    await until(async () => (await jsonLines(out)).lines >= 2000, 'lines after the restart');
    expect(await jsonLines(out)).toEqual({ lines: 2000, distinct: 2000 });
  });

  it('hands operator state to the reloaded version: a duplicate seen before the reload is still dropped after it', async () => {
    const conf = join(dir, 'conf-state');
    const log = join(dir, 'state.log');
    const out = join(dir, 'state.jsonl');
    await mkdir(conf);
    const doc = (checkpointSeconds: number) =>
      pipeline({
        name: 'unique',
        dataDir: join(dir, '.etl'),
        log,
        sink: `type: file, path: ${out}`,
        checkpointSeconds,
      })
        .replace(
          '    parsed: { type: parse, inputs: [logs], format: auto }\n',
          '    parsed: { type: parse, inputs: [logs], format: auto }\n    once: { type: dedupe, inputs: [parsed], fields: [query] }\n',
        )
        .replace('inputs: [parsed], type: file', 'inputs: [once], type: file');
    await writeFile(log, '');
    await appendLines(log, 0, 400);
    await writeFile(join(conf, 'unique.yaml'), doc(0.2));
    const d = await daemon({ configDir: conf });
    try {
      await until(async () => (await jsonLines(out)).lines === 400, '400 lines');
      await writeFile(join(conf, 'unique.yaml'), doc(0.4));
      await d.configDir?.scan();
      expect((await d.call('GET', '/pipelines/unique')).body).toMatchObject({ status: 'running', runs: 2 });
      // The first 100 lines again (duplicates), then 100 new ones.
      await appendLines(log, 0, 100);
      await appendLines(log, 400, 100);
      await until(async () => (await jsonLines(out)).lines >= 500, '500 lines');
      await until(
        async () => (await d.call('GET', '/pipelines/unique')).body.stats.recordsIn === 200,
        'every line read',
      );
      expect((await d.call('GET', '/pipelines/unique')).body.stats.recordsOut).toBe(100);
      expect(await jsonLines(out)).toEqual({ lines: 500, distinct: 500 });
    } finally {
      await d.shutdown();
    }
  });
});
