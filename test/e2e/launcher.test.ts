/**
 * `etl` on a Node older than it needs, as on a fresh machine: the launcher runs the command on a supported
 * Node, passes signals on exactly once, ends with the command's exit code, and says in one line what to do
 * when no supported Node can be had.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ETL_BIN } from '../support/cli.ts';

const MINIMUM = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    engines: { node: string };
  }
).engines.node.replace('>=', '');

const dir = mkdtempSync(join(tmpdir(), 'etl-launcher-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let oldNode: string;
beforeAll(() => {
  oldNode = findOldNode();
}, 120_000);

function versionOf(binary: string): string | undefined {
  const result = spawnSync(binary, ['-p', 'process.versions.node'], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

function older(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  const [wantMajor = 0, wantMinor = 0] = MINIMUM.split('.').map(Number);
  return major < wantMajor || (major === wantMajor && minor < wantMinor);
}

/** The machine's own Node when it is older than etl needs (as here), else Node 20 from the npm registry. */
function findOldNode(): string {
  const onPath = spawnSync('which', ['-a', 'node'], { encoding: 'utf8' }).stdout.split('\n');
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node', ...onPath]) {
    if (!candidate || !existsSync(candidate)) continue;
    const version = versionOf(candidate);
    if (version && older(version)) return candidate;
  }
  const prefix = join(homedir(), '.cache', 'etl-test', 'node-20');
  const binary = join(prefix, 'node_modules', `node-${process.platform}-${process.arch}`, 'bin', 'node');
  if (!existsSync(binary)) {
    const npm = spawnSync(
      'npm',
      ['install', '--prefix', prefix, '--no-save', '--ignore-scripts', `node-${process.platform}-${process.arch}@20`],
      { encoding: 'utf8' },
    );
    if (npm.status !== 0) throw new Error(`cannot install Node 20 for this test: ${npm.stderr}`);
  }
  return binary;
}

interface Launched {
  readonly child: ChildProcess;
  readonly done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  /** Resolves once standard output has received `text`. */
  printed(text: string): Promise<void>;
}

function launch(args: string[], env: NodeJS.ProcessEnv, options: { detached?: boolean } = {}): Launched {
  const child = spawn(oldNode, [ETL_BIN, ...args], {
    cwd: dir,
    env: { ...process.env, ETL_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  });
  let stdout = '';
  let stderr = '';
  const watchers: Array<() => void> = [];
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    for (const watch of watchers) watch();
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>(
    (resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  const printed = (text: string) =>
    new Promise<void>((resolve, reject) => {
      const watch = () => {
        if (stdout.includes(text)) resolve();
      };
      watchers.push(watch);
      watch();
      done.then(() => reject(new Error(`exited before printing ${text}: ${stderr}`)));
    });
  return { child, done, printed };
}

function pipeline(name: string, generator: string): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: ${name} }
spec:
  settings: { data_dir: ${join(dir, name)} }
  sources:
    gen: { type: generator, ${generator} }
  sinks:
    out: { type: stdout, inputs: [gen] }
`,
  );
  return file;
}

const onThisNode = { ETL_NODE: process.execPath };

describe('the launcher on an older Node', () => {
  it('runs the command on the supported Node and returns its output and exit code', async () => {
    expect(older(versionOf(oldNode) as string)).toBe(true);
    const version = await launch(['--version'], onThisNode).done;
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);

    const file = pipeline('finite', 'count: 300, seed: 1');
    const run = await launch(['apply', '--no-progress', file], onThisNode).done;
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim().split('\n')).toHaveLength(300);
    expect(run.stderr).toMatch(/outcome\s+succeeded/);

    const invalid = await launch(['validate', join(dir, 'missing.yaml')], onThisNode).done;
    expect(invalid.code).toBe(1);
  });

  it('passes SIGTERM on: a pipeline that follows its input stops gracefully and exits 0', async () => {
    const file = pipeline('endless', 'seed: 2');
    const run = launch(['apply', '--no-progress', file], onThisNode);
    await run.printed('\n');
    run.child.kill('SIGTERM');
    const result = await run.done;
    expect(result.stderr).toContain('SIGTERM: stopping sources');
    expect(result.stderr).toMatch(/outcome\s+stopped/);
    expect(result.code, result.stderr).toBe(0);
  });

  it('a Ctrl-C to the whole process group stops a finite run once (drain, not abort) and exits 130', async () => {
    const file = pipeline('cut-short', 'count: 100000000, seed: 3');
    // A terminal sends SIGINT to its foreground process group: the launcher and the command both get it.
    const run = launch(['apply', '--no-progress', file], onThisNode, { detached: true });
    await run.printed('\n');
    process.kill(-(run.child.pid as number), 'SIGINT');
    const result = await run.done;
    expect(result.stderr).toContain('SIGINT: stopping sources');
    expect(result.stderr).not.toContain('aborting now');
    expect(result.stderr).toMatch(/outcome\s+stopped/);
    expect(result.code, result.stderr).toBe(130);
  });

  it('says in one line what to do when no supported Node can be had', async () => {
    const result = await launch(['--version'], { ETL_NODE: join(dir, 'no-such-node') }).done;
    expect(result.code).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`etl: needs Node.js >=${MINIMUM}`);
    expect(lines[0]).toContain('set ETL_NODE');
  });
});
