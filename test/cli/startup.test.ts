/**
 * What `etl apply` loads to start (issue 16: start-up within 150 ms of `node -e 0`): the operators a pipeline
 * uses and the engine, never another operator's definition or implementation, nor the libraries of features it
 * does not use (metrics nobody scrapes, a terminal board on a pipe, pretty logs when nothing is logged).
 * A module hook preloaded into the real CLI process records every module it loads.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { etl } from '../support/cli.ts';
import { ModuleLoads } from '../support/module-loads.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-startup-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const loads = new ModuleLoads(dir);

/** Runs `etl apply` on one pipeline; resolves with its stdout and the URLs of every module it loaded. */
async function applyRecordingLoads(
  pipeline: string,
): Promise<{ code: number | null; stdout: string; loaded: string[] }> {
  const file = join(dir, 'pipeline.yaml');
  writeFileSync(file, pipeline);
  const recording = loads.next();
  const { code, stdout, stderr } = await etl(['apply', file], {
    cwd: dir,
    nodeArgs: recording.nodeArgs,
    // The sources: what they import is what the bundle's lazy chunks hold (test/cli/bundle.test.ts runs that).
    // The log level of a user's run: a quieter one could leave the loggers' libraries unloaded.
    env: { ...recording.env, ETL_BUNDLE: '0', ETL_LOG_LEVEL: undefined },
  });
  if (code !== 0) throw new Error(`etl apply exited with ${code}:\n${stderr}`);
  return { code, stdout, loaded: recording.loaded() };
}

/** The npm packages among loaded URLs (`@scope/name` or `name`). */
function packages(loaded: readonly string[]): Set<string> {
  const names = new Set<string>();
  for (const url of loaded) {
    const match = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
    if (match?.[1]) names.add(match[1]);
  }
  return names;
}

/** The operator folders among loaded URLs (`sources/file`, `transforms/parse`…); shared modules aside. */
function operatorFolders(loaded: readonly string[]): Set<string> {
  const folders = new Set<string>();
  for (const url of loaded) {
    const match = /\/operators\/((?:sources|transforms|sinks|resources)\/[^/]+)\//.exec(url);
    if (match?.[1] && !url.includes('/node_modules/')) folders.add(match[1]);
  }
  return folders;
}

describe('etl apply start-up', () => {
  it('loads only the operators a file → parse → stdout pipeline uses, and no library it does not need', async () => {
    const log = join(dir, 'access.log');
    writeFileSync(log, '203.0.113.7 - - [05/Dec/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 12 "-" "curl/8.5.0"\n');
    const { stdout, loaded } = await applyRecordingLoads(
      [
        'apiVersion: etl/v1',
        'kind: Pipeline',
        'metadata: { name: startup }',
        'spec:',
        `  sources: { lines: { type: file, paths: [${JSON.stringify(log)}] } }`,
        '  operators: { parsed: { type: parse, inputs: [lines], format: combined } }',
        '  sinks: { out: { type: stdout, inputs: [parsed] } }',
        '',
      ].join('\n'),
    );
    // It ran: the record reached stdout.
    expect(JSON.parse(stdout.trim())).toMatchObject({ path: '/a', status: 200 });

    // Definitions are looked up by type name alone, so the file sink's (a few lines) comes with the file source's.
    const allowed = new Set(['sources/file', 'transforms/parse', 'sinks/stdout', 'sinks/file', 'resources/redis']);
    expect([...operatorFolders(loaded)].filter((folder) => !allowed.has(folder))).toEqual([]);
    expect(operatorFolders(loaded)).toContain('transforms/parse');

    const unwanted = [
      // Other operators' libraries.
      'maxmind',
      'ua-parser-js',
      'isbot',
      'fastify',
      'kafkajs',
      '@elastic/elasticsearch',
      'nodemailer',
      'pg',
      'pg-copy-streams',
      '@electric-sql/pglite',
      'ioredis',
      '@nats-io/transport-node',
      '@marcbachmann/cel-js',
      '@bufbuild/cel',
      // Metrics nobody scrapes, traces nobody asked for, a live board on a pipe, the logger of a silent run.
      'prom-client',
      '@opentelemetry/api',
      '@opentelemetry/sdk-trace',
      'log-update',
      'pino',
      'pino-pretty',
      // The command-line parser of the help, the usage errors and the other commands (engine/cli/quick.ts).
      'commander',
    ];
    const found = packages(loaded);
    expect(unwanted.filter((name) => found.has(name))).toEqual([]);
    // Not the whole of RxJS (its index): the runtime imports the pieces it uses.
    expect(loaded.filter((url) => /\/node_modules\/rxjs\/dist\/[^/]+\/index\.js$/.test(url))).toEqual([]);
    // The compiled validators of the envelope and of the operators named (the file sink's with the source's) only.
    const validators = loaded.flatMap((url) => /\/engine\/schema\/compiled\/([^/]+)$/.exec(url)?.[1] ?? []);
    expect(validators.sort()).toEqual([
      'envelope.js',
      'sink-file.js',
      'sink-stdout.js',
      'source-file.js',
      'transform-parse.js',
    ]);
    // The pipeline schema is compiled ahead of time: of Ajv, only the runtime helpers its code calls.
    expect(loaded.filter((url) => url.includes('/node_modules/ajv/') && !url.includes('/ajv/dist/runtime/'))).toEqual(
      [],
    );
  });
});
