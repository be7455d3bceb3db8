/**
 * The bundled CLI (bin/bundle.js): bin/etl.js runs it while it is built from the sources as they are, else the
 * sources. A bundle of the test's own (under dist/, as node_modules must be found from it) is chosen with
 * ETL_BUNDLE=<folder>; a module hook preloaded into the CLI records what it loads, so each test knows which of
 * the two ran. The bundled CLI is run through what finds files next to its sources: the compiled validators,
 * package.json, signatures.yaml, worker threads, the GeoIP database, the PostgreSQL template and its thread,
 * the report's page script.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBundle, freshBundle } from '../../bin/bundle.js';
import { etl } from '../support/cli.ts';
import { ModuleLoads } from '../support/module-loads.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'etl-bundle-'));
mkdirSync(join(ROOT, 'dist'), { recursive: true });
const bundleRoot = mkdtempSync(join(ROOT, 'dist', 'bundle-test-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(bundleRoot, { recursive: true, force: true });
});

const loads = new ModuleLoads(dir);

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly loaded: readonly string[];
}

/** Runs bin/etl.js with `bundle` as ETL_BUNDLE (a folder, or '0'); resolves with what it printed and loaded. */
async function run(args: readonly string[], bundle: string, cwd = dir): Promise<Run> {
  const recording = loads.next();
  const { code, stdout, stderr } = await etl([...args], {
    cwd,
    nodeArgs: recording.nodeArgs,
    env: { ...recording.env, ETL_BUNDLE: bundle },
  });
  return { code, stdout, stderr, loaded: recording.loaded() };
}

const SOURCE_MAIN = pathToFileURL(join(ROOT, 'engine/cli/main.ts')).href;
/** Our TypeScript modules a run loaded on its main thread or in its workers. */
const ourSources = (loaded: readonly string[]) =>
  loaded.filter((url) => /\/(engine|operators)\/.*\.ts$/.test(url) && !url.includes('/node_modules/'));
const fromBundle = (r: Run) => r.loaded.some((url) => url.startsWith(pathToFileURL(bundleRoot).href));

let entry: string;
beforeAll(async () => {
  await buildBundle(bundleRoot);
  entry = freshBundle(bundleRoot) as string;
});

describe('the bundled CLI', () => {
  it('validates from the bundle, with the compiled validators beside the sources', async () => {
    expect(entry.startsWith(bundleRoot)).toBe(true);
    const r = await run(['validate', join(ROOT, 'examples', 'quickstart.yaml')], bundleRoot);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('1 pipeline in 1 file: valid');
    expect(r.loaded).toContain(pathToFileURL(entry).href);
    expect(ourSources(r.loaded)).toEqual([]);
    const validators = r.loaded.flatMap((url) => /\/engine\/schema\/compiled\/([^/]+)$/.exec(url)?.[1] ?? []);
    expect(validators).toContain('envelope.js');
    expect(validators).toContain('transform-parse.js');
    // Not compiled at run time: of Ajv, only the runtime helpers the compiled code calls.
    expect(r.loaded.filter((url) => url.includes('/node_modules/ajv/') && !url.includes('/dist/runtime/'))).toEqual([]);
    // yaml is inside the bundle.
    expect(r.loaded.filter((url) => url.includes('/node_modules/yaml/'))).toEqual([]);
  });

  it('prints the version of package.json', async () => {
    const r = await run(['--version'], bundleRoot);
    expect(r.code, r.stderr).toBe(0);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(r.stdout.trim()).toBe(pkg.version);
    expect(fromBundle(r)).toBe(true);
  });

  it('runs stages on worker threads, and threat_intel with its bundled signatures', async () => {
    const log = join(dir, 'threats.log');
    writeFileSync(
      log,
      [
        '203.0.113.7 - - [05/Dec/2026:10:00:00 +0000] "GET /index.html HTTP/1.1" 200 12 "-" "curl/8.5.0"',
        '203.0.113.8 - - [05/Dec/2026:10:00:01 +0000] "GET /../../etc/passwd HTTP/1.1" 404 0 "-" "curl/8.5.0"',
        '',
      ].join('\n'),
    );
    const pipeline = join(dir, 'threats.yaml');
    writeFileSync(
      pipeline,
      [
        'apiVersion: etl/v1',
        'kind: Pipeline',
        'metadata: { name: bundle-threats }',
        'spec:',
        `  sources: { lines: { type: file, paths: [${JSON.stringify(log)}] } }`,
        '  operators:',
        '    parsed: { type: parse, inputs: [lines], format: combined, workers: 2 }',
        '    intel: { type: threat_intel, inputs: [parsed] }',
        '  sinks: { out: { type: stdout, inputs: [intel] } }',
        '',
      ].join('\n'),
    );
    const cwd = mkdtempSync(join(dir, 'threats-'));
    const r = await run(['apply', '--no-progress', pipeline], bundleRoot, cwd);
    expect(r.code, r.stderr).toBe(0);
    expect(fromBundle(r)).toBe(true);
    const records = r.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { path: string; threat_rules: string | null });
    expect(records.map((record) => record.path)).toEqual(['/index.html', '/../../etc/passwd']);
    expect(records[0]?.threat_rules).toBeNull();
    expect(records[1]?.threat_rules).toContain('traversal-dot-dot');
    // The worker threads run the sources of their entry (engine/runtime/workers/worker.ts).
    expect(r.loaded).toContain(pathToFileURL(join(ROOT, 'engine/runtime/workers/worker.ts')).href);
    expect(r.loaded).not.toContain(SOURCE_MAIN);
  });

  it('loads the quickstart into the embedded database, queries it and writes the report', async () => {
    const cwd = mkdtempSync(join(dir, 'quickstart-'));
    cpSync(join(ROOT, 'examples'), join(cwd, 'examples'), { recursive: true });
    const applied = await run(['apply', '--no-progress', 'examples/quickstart.yaml'], bundleRoot, cwd);
    expect(applied.code, applied.stderr).toBe(0);
    expect(fromBundle(applied)).toBe(true);
    expect(applied.loaded).not.toContain(SOURCE_MAIN);

    const query = 'SELECT count(*)::int AS n, count(geo_country_code)::int AS located FROM access_logs';
    const queried = await run(
      ['query', '--pipeline', 'examples/quickstart.yaml', '--format', 'json', query],
      bundleRoot,
      cwd,
    );
    expect(queried.code, queried.stderr).toBe(0);
    expect(fromBundle(queried)).toBe(true);
    const [row] = JSON.parse(queried.stdout) as Array<{ n: number; located: number }>;
    expect(row?.n).toBeGreaterThan(100);
    expect(row?.located).toBeGreaterThan(0.9 * (row?.n ?? 0));

    const out = join(cwd, 'report.html');
    const reported = await run(['report', '--pipeline', 'examples/quickstart.yaml', '--out', out], bundleRoot, cwd);
    expect(reported.code, reported.stderr).toBe(0);
    expect(fromBundle(reported)).toBe(true);
    const page = readFileSync(join(ROOT, 'engine', 'report', 'page.js'), 'utf8');
    expect(readFileSync(out, 'utf8')).toContain(page.split('\n').find((line) => line.includes('getElementById')));
  });
});

describe('the launcher', () => {
  it('refuses a stale bundle and runs the sources: a file it was built from changed, or is gone', async () => {
    const manifestFile = join(bundleRoot, 'manifest.json');
    const manifest = readFileSync(manifestFile, 'utf8');
    const parsed = JSON.parse(manifest) as { inputs: Array<[string, number, number]> };
    const quick = parsed.inputs.find(([path]) => path === 'engine/cli/quick.ts');
    expect(quick).toBeDefined();
    try {
      // engine/cli/quick.ts as edited since the build: another modification time, then another size.
      for (const edit of [
        (input: [string, number, number]) => {
          input[2] += 1;
        },
        (input: [string, number, number]) => {
          input[1] += 1;
        },
      ]) {
        const stale = JSON.parse(manifest) as typeof parsed;
        edit(stale.inputs.find(([path]) => path === 'engine/cli/quick.ts') as [string, number, number]);
        writeFileSync(manifestFile, JSON.stringify(stale));
        expect(freshBundle(bundleRoot)).toBeUndefined();
        const r = await run(['validate', join(ROOT, 'examples', 'quickstart.yaml')], bundleRoot);
        expect(r.code, r.stderr).toBe(0);
        expect(fromBundle(r)).toBe(false);
        expect(r.loaded).toContain(SOURCE_MAIN);
      }
      // A file it was built from is gone.
      const gone = JSON.parse(manifest) as typeof parsed;
      gone.inputs.push(['engine/cli/removed-since.ts', 10, 1]);
      writeFileSync(manifestFile, JSON.stringify(gone));
      expect(freshBundle(bundleRoot)).toBeUndefined();
    } finally {
      writeFileSync(manifestFile, manifest);
    }
    expect(freshBundle(bundleRoot)).toBe(entry);
  });

  it('runs the sources with ETL_BUNDLE=0, and when no bundle was built', async () => {
    const off = await run(['--version'], '0');
    expect(off.code, off.stderr).toBe(0);
    expect(off.loaded).toContain(SOURCE_MAIN);
    expect(fromBundle(off)).toBe(false);

    const none = mkdtempSync(join(dir, 'no-bundle-'));
    expect(freshBundle(none)).toBeUndefined();
    const r = await run(['validate', join(ROOT, 'examples', 'quickstart.yaml')], none);
    expect(r.code, r.stderr).toBe(0);
    expect(r.loaded).toContain(SOURCE_MAIN);
  });
});
