/**
 * The cost of following many idle files: `etl apply` of a pipeline `file (follow) -> stdout` over N files,
 * run as users run it (a child process, optionally under `ulimit -n`). Once every initial line is out it
 * measures, over an idle period: CPU (utime + stime from /proc), RSS and open descriptors; then the latency of
 * a line appended to one file, and of a file renamed away (rotation) and replaced; then stops it with SIGTERM
 * and reports the exit code and the errors it logged.
 * Usage: node bench/file-follow.ts [--files 10000] [--lines 2] [--idle-seconds 10] [--ulimit 1024]
 *        [--checkpoint-seconds 1] [--root <another checkout>, to measure it the same way]
 */
import { spawn } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  statSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const files = Number(arg('files') ?? 10_000);
const linesPerFile = Number(arg('lines') ?? 2);
const idleSeconds = Number(arg('idle-seconds') ?? 10);
const ulimit = arg('ulimit');

const root = arg('root') ?? fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'etl-bench-follow-'));
const logs = join(dir, 'logs');
mkdirSync(logs);
const name = (i: number): string => join(logs, `f${String(i).padStart(6, '0')}.log`);
const line = (i: number, n: number): string => `file ${i} line ${n} ${'x'.repeat(100)}\n`;
for (let i = 0; i < files; i++) {
  let text = '';
  for (let n = 0; n < linesPerFile; n++) text += line(i, n);
  writeFileSync(name(i), text);
}
const pipelineFile = join(dir, 'follow.yaml');
writeFileSync(
  pipelineFile,
  [
    'apiVersion: etl/v1',
    'kind: Pipeline',
    'metadata: { name: bench-follow }',
    'spec:',
    `  settings: { data_dir: ${JSON.stringify(join(dir, '.etl'))}, checkpoint_interval_seconds: ${Number(arg('checkpoint-seconds') ?? 1)} }`,
    '  sources:',
    `    logs: { type: file, paths: [${JSON.stringify(join(logs, '*.log'))}], follow: true }`,
    '  sinks:',
    '    out: { type: stdout, inputs: [logs], format: text }',
    '',
  ].join('\n'),
);

const node = process.execPath;
const command = `${ulimit ? `ulimit -n ${ulimit}; ` : ''}exec ${JSON.stringify(node)} bin/etl.js apply ${JSON.stringify(pipelineFile)} --no-progress`;
const child = spawn('bash', ['-c', command], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
const pid = child.pid as number;
let received = 0;
let stdoutTail = '';
const waiters: Array<() => void> = [];
child.stdout.setEncoding('utf8');
child.stdout.on('data', (chunk: string) => {
  const text = stdoutTail + chunk;
  const parts = text.split('\n');
  stdoutTail = parts.pop() ?? '';
  received += parts.length;
  for (const part of parts) if (part.startsWith('marker')) for (const wake of waiters.splice(0)) wake();
  for (const wake of waiters.splice(0)) wake();
});
let stderr = '';
child.stderr.setEncoding('utf8');
child.stderr.on('data', (chunk: string) => {
  stderr += chunk;
});
const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

async function until(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline || child.exitCode !== null) return false;
    await new Promise<void>((resolve) => {
      waiters.push(resolve);
      setTimeout(resolve, 50);
    });
  }
  return true;
}

/** utime + stime of the child in seconds. */
function cpuSeconds(): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
const rssMiB = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
const fds = (): number => readdirSync(`/proc/${pid}/fd`).length;

const expected = files * linesPerFile;
const started = Date.now();
const readAll = await until(() => received >= expected, 300_000);
const startCpu = child.exitCode === null ? `, ${cpuSeconds().toFixed(1)} s of CPU` : '';
console.log(
  `${files} files, ${expected} lines${ulimit ? `, ulimit -n ${ulimit}` : ''}: ${readAll ? 'all read' : `only ${received} read`} in ${((Date.now() - started) / 1000).toFixed(1)} s${startCpu}`,
);
if (child.exitCode !== null) {
  const lines = stderr.split('\n');
  const emfile = lines.filter((l) => l.includes('EMFILE')).length;
  console.log(`etl apply exited early with code ${child.exitCode}; ${emfile} EMFILE lines; last lines of its log:`);
  for (const l of lines.slice(-6)) console.log(`  ${l.slice(0, 240)}`);
  rmSync(dir, { recursive: true, force: true });
  process.exit(1);
}
// Let the start settle (first checkpoints, GC) before measuring the idle cost.
await new Promise((resolve) => setTimeout(resolve, 2000));
const cpu0 = cpuSeconds();
const t0 = Date.now();
await new Promise((resolve) => setTimeout(resolve, idleSeconds * 1000));
const cpuPercent = ((cpuSeconds() - cpu0) / ((Date.now() - t0) / 1000)) * 100;
console.log(
  `idle ${idleSeconds} s: CPU ${cpuPercent.toFixed(1)} %, RSS ${rssMiB().toFixed(0)} MiB, ${fds()} open descriptors`,
);

const before = received;
const appendedAt = Date.now();
appendFileSync(name(Math.floor(files / 2)), 'marker appended\n');
const appended = await until(() => received > before, 10_000);
console.log(`appended line: ${appended ? `${Date.now() - appendedAt} ms` : 'not seen within 10 s'}`);

// Rename rotation of one file: lines written before and after the rename, then a new file under the name.
const rotating = name(1);
appendFileSync(rotating, 'marker before rotation\n');
renameSync(rotating, `${rotating}.1`);
appendFileSync(`${rotating}.1`, 'marker after rename\n');
writeFileSync(rotating, 'marker new file\n');
const rotatedAt = Date.now();
const rotated = await until(() => received >= before + 4, 10_000);
console.log(
  `rotation: ${rotated ? `3 lines in ${Date.now() - rotatedAt} ms` : `only ${received - before - 1} of 3 lines within 10 s`}`,
);

child.kill('SIGTERM');
const code = await exited;
const stateFile = join(dir, '.etl', 'state', 'bench-follow.json');
if (existsSync(stateFile)) console.log(`checkpoint state: ${(statSync(stateFile).size / 1048576).toFixed(1)} MiB`);
const errorLines = stderr.split('\n').filter((l) => /\berror\b|ERROR/.test(l));
const emfile = stderr.split('\n').filter((l) => l.includes('EMFILE')).length;
console.log(`exit code ${code}; ${errorLines.length} error lines logged (${emfile} EMFILE)`);
for (const l of errorLines.slice(0, 5)) console.log(`  ${l.slice(0, 240)}`);
rmSync(dir, { recursive: true, force: true });
