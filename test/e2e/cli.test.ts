/** The `etl` command as a user runs it: exit codes, output, and nothing run when the config is wrong. */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { etl, outputSeen, startEtl } from '../support/cli.ts';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

function workspace(yaml: (dir: string) => string): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'etl-cli-'));
  made.push(dir);
  const file = join(dir, 'pipeline.yaml');
  writeFileSync(file, yaml(dir));
  return { dir, file };
}

const generatorPipeline = (dir: string) => `apiVersion: etl/v1
kind: Pipeline
metadata: { name: gen }
spec:
  settings: { data_dir: ${join(dir, '.etl')} }
  sources:
    gen: { type: generator, count: 5000, seed: 7, malformed_ratio: 0 }
  sinks:
    out: { type: file, inputs: [gen], path: ${join(dir, 'out.jsonl')}, format: jsonl }
`;

describe('etl CLI', () => {
  it('prints its version and help', async () => {
    const version = await etl(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toBe(pkg.version);
    const help = await etl(['--help']);
    expect(help.code).toBe(0);
    for (const command of ['apply', 'validate', 'graph', 'schema', 'query']) expect(help.stdout).toContain(command);
  });

  it('exits 2 on an unknown command or option', async () => {
    expect((await etl(['frobnicate'])).code).toBe(2);
    expect((await etl(['apply', '--frob', 'x.yaml'])).code).toBe(2);
  });

  it('validates a good pipeline with exit 0 and a bad one with exit 1 and file:line:col', async () => {
    const good = workspace(generatorPipeline);
    const ok = await etl(['validate', good.file]);
    expect(ok.code, ok.stderr + ok.stdout).toBe(0);

    const bad = workspace(
      (dir) => `apiVersion: etl/v1
kind: Pipeline
metadata: { name: bad }
spec:
  sources:
    gen: { type: generator, count: 10 }
  sinks:
    out: { type: file, inputs: [gne], path: ${join(dir, 'out.jsonl')} }
`,
    );
    const failed = await etl(['validate', bad.file]);
    expect(failed.code).toBe(1);
    expect(failed.stdout + failed.stderr).toMatch(new RegExp(`${bad.file.replace(/[.]/g, '\\.')}:8:\\d+`));
    expect(failed.stdout + failed.stderr).toContain('gen');

    const json = await etl(['validate', '--format', 'json', bad.file]);
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as { valid: boolean; diagnostics: Array<{ line: number; code: string }> };
    expect(report.valid).toBe(false);
    expect(report.diagnostics.some((d) => d.line === 8 && d.code === 'ETL_GRAPH_UNKNOWN_INPUT')).toBe(true);
  });

  it('refuses to apply a bad pipeline before anything runs', async () => {
    const bad = workspace(
      (dir) => `apiVersion: etl/v1
kind: Pipeline
metadata: { name: bad }
spec:
  settings: { data_dir: ${join(dir, '.etl')} }
  sources:
    gen: { type: generator, count: 10, sead: 1 }
  sinks:
    out: { type: file, inputs: [gen], path: ${join(dir, 'out.jsonl')} }
`,
    );
    const result = await etl(['apply', bad.file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('sead');
    expect(existsSync(join(bad.dir, 'out.jsonl'))).toBe(false);
    expect(existsSync(join(bad.dir, '.etl'))).toBe(false);
  });

  it('applies a pipeline, prints a summary, and is idempotent on rerun', async () => {
    const { dir, file } = workspace(generatorPipeline);
    const first = await etl(['apply', '--no-progress', file]);
    expect(first.code, first.stderr).toBe(0);
    const lines = readFileSync(join(dir, 'out.jsonl'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(5000);
    expect(first.stderr).toMatch(/5,?000/);
    const second = await etl(['apply', '--no-progress', file]);
    expect(second.code, second.stderr).toBe(0);
    expect(readFileSync(join(dir, 'out.jsonl'), 'utf8').trim().split('\n')).toHaveLength(5000);
  });

  it('drains on the first SIGTERM and aborts on a second signal when draining is stuck', async () => {
    // One batch (about 1 MB of JSON lines) is several times what the pipe and the reader's buffer hold, so once
    // nobody reads standard output its first write never completes and draining cannot finish.
    const { file } = workspace(
      (dir) => `apiVersion: etl/v1
kind: Pipeline
metadata: { name: stuck }
spec:
  settings: { data_dir: ${join(dir, '.etl')}, shutdown_timeout_seconds: 60, batch_max_records: 4096 }
  sources:
    gen: { type: generator }
  sinks:
    out: { type: stdout, inputs: [gen] }
`,
    );
    const run = startEtl(['apply', '--no-progress', file]);
    const stdout = run.child.stdout as Readable;
    // The pipeline is running once its first output arrives; from then on nobody reads.
    const running = outputSeen(stdout);
    stdout.once('data', () => stdout.pause());
    expect(await running, 'the pipeline writes to standard output').toBe(true);
    const draining = outputSeen(run.child.stderr as Readable, 'stopping sources');
    run.child.kill('SIGTERM');
    expect(await draining, 'the first SIGTERM starts draining').toBe(true);
    // Another signal, not the same one again: a SIGTERM repeated within 300 ms counts as the first delivered
    // twice (test/cli/apply-signals.test.ts).
    run.child.kill('SIGINT');
    const result = await run.done;
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('aborting now');
    // The second signal ended it, not the shutdown deadline.
    expect(result.stderr).not.toContain('shutdown took longer');
  });

  it('draws the graph as mermaid and dot', async () => {
    const { file } = workspace(generatorPipeline);
    const mermaid = await etl(['graph', file]);
    expect(mermaid.code).toBe(0);
    expect(mermaid.stdout).toMatch(/^flowchart LR/);
    expect(mermaid.stdout).toContain('p0_gen --> p0_out');
    const dot = await etl(['graph', '--format', 'dot', file]);
    expect(dot.code).toBe(0);
    expect(dot.stdout).toMatch(/"[^"/]+\/gen" -> "[^"/]+\/out"/);
  });

  it('lists the fields on each edge with --fields', async () => {
    const { file } = workspace(generatorPipeline);
    const fields = await etl(['graph', '--fields', file]);
    expect(fields.code, fields.stderr).toBe(0);
    expect(fields.stdout).toContain('  gen → out\n    message  string\n');
  });

  it('prints the pipeline JSON Schema', async () => {
    const result = await etl(['schema']);
    expect(result.code).toBe(0);
    const schema = JSON.parse(result.stdout) as { $id?: string; $defs?: object; definitions?: object };
    expect(schema.$id).toContain('pipeline');
  });
});
