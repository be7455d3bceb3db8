/**
 * `etl apply <paths> --server URL` and `etl diff <paths> --server URL`: the files' YAML sent to a running
 * daemon, which validates and applies it (or, for diff, tells what it would change). Every file is checked
 * first (a dry run of each); nothing is applied if one is invalid, as `etl apply` runs nothing then.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

const PIPELINE_MARK = /^\s*apiVersion:\s*["']?etl\//m;
const YAML_FILE = /\.ya?ml$/i;

export interface ClientOptions {
  readonly server: string;
  readonly out: { write(chunk: string): unknown };
  readonly err: { write(chunk: string): unknown };
  /** Extra request headers (an API key). */
  readonly headers?: Record<string, string>;
}

/** `Authorization: Bearer $ETL_API_KEY` when that variable is set, for a daemon with a security layer. */
export function apiKeyHeaders(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const key = env.ETL_API_KEY?.trim();
  return key ? { authorization: `Bearer ${key}` } : {};
}

interface Answer {
  valid: boolean;
  diagnostics: Array<{ text: string; severity: string }>;
  pipelines: Array<{
    name: string;
    action: string;
    changes: Array<{ path: string; change: string }>;
    message?: string;
    status?: string;
  }>;
}

/** Exit code: 0 when every file was taken (or, for diff, could be), 1 otherwise. */
export async function applyToServer(
  paths: readonly string[],
  mode: 'apply' | 'diff',
  options: ClientOptions,
): Promise<number> {
  const files = await pipelineFiles(paths);
  if (files.length === 0) {
    options.err.write('no pipeline file found in the given paths\n');
    return 1;
  }
  const texts = await Promise.all(files.map(async (file) => ({ file, yaml: await readFile(file, 'utf8') })));
  const checked = await Promise.all(texts.map((t) => send(t.file, t.yaml, true, options)));
  let ok = true;
  for (const [i, answer] of checked.entries()) ok = report(texts[i]?.file ?? '', answer, mode, options) && ok;
  if (!ok) {
    if (mode === 'apply') options.err.write('nothing was applied: fix the errors above\n');
    return 1;
  }
  if (mode === 'diff') return 0;
  for (const { file, yaml } of texts) {
    const answer = await send(file, yaml, false, options);
    ok = report(file, answer, 'applied', options) && ok;
  }
  return ok ? 0 : 1;
}

async function send(file: string, yaml: string, dryRun: boolean, options: ClientOptions): Promise<Answer> {
  const url = new URL(`/pipelines?dryRun=${dryRun}`, options.server);
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...options.headers },
    body: JSON.stringify({ yaml, file }),
  });
  const body = (await response.json()) as Partial<Answer> & { message?: string };
  if (!Array.isArray(body.pipelines)) {
    throw new Error(`${url.origin} answered ${response.status}: ${body.message ?? 'an unexpected answer'}`);
  }
  return { valid: body.valid === true, diagnostics: body.diagnostics ?? [], pipelines: body.pipelines };
}

/** `diff` prints the plan, `apply` (its dry run) only what stops it, `applied` what was done. */
function report(file: string, answer: Answer, stage: 'diff' | 'apply' | 'applied', options: ClientOptions): boolean {
  const dryRun = stage === 'diff';
  for (const d of answer.diagnostics) options.err.write(`${d.text}\n`);
  if (!answer.valid) return false;
  let ok = true;
  for (const p of answer.pipelines) {
    const verb = dryRun ? PLANNED[p.action] : DONE[p.action];
    const status = p.status ? ` (${p.status})` : '';
    const line = `${p.name}: ${verb ?? p.action}${status}${p.message ? `: ${p.message}` : ''}`;
    if (p.action === 'refused') {
      ok = false;
      options.err.write(`${file}: ${line}\n`);
      continue;
    }
    if (stage !== 'apply') options.out.write(`${line}\n`);
    if (dryRun) for (const c of p.changes) if (c.path) options.out.write(`  ${SIGN[c.change] ?? '~'} ${c.path}\n`);
  }
  return ok;
}

const PLANNED: Record<string, string> = {
  create: 'would be created',
  update: 'would be reloaded',
  unchanged: 'unchanged',
  refused: 'would be refused',
};
const DONE: Record<string, string> = {
  create: 'created',
  update: 'reloaded',
  unchanged: 'unchanged',
  refused: 'refused',
};
const SIGN: Record<string, string> = { added: '+', removed: '-', changed: '~' };

/** Files named, and the pipeline files below directories (as `etl apply` finds them). */
async function pipelineFiles(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const path of paths) {
    const info = await stat(path).catch(() => undefined);
    if (!info) throw new Error(`no such file or directory: ${path}`);
    if (!info.isDirectory()) {
      out.push(path);
      continue;
    }
    for (const file of await yamlFiles(path)) {
      if (PIPELINE_MARK.test(await readFile(file, 'utf8'))) out.push(file);
    }
  }
  return out;
}

async function yamlFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await yamlFiles(path)));
    else if (entry.isFile() && YAML_FILE.test(entry.name)) out.push(path);
  }
  return out.sort();
}
