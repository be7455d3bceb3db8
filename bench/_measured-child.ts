/**
 * A command run as a child process and measured whole: wall time from spawn to exit, and the CPU time (every
 * thread) and peak RSS the child reports of itself as it exits, through a module preloaded into every command
 * alike (so `node -e 0` and `etl apply` pay the same for it). For benches of whole processes.
 */
import { spawn } from 'node:child_process';

/** Writes the child's CPU time and peak RSS to fd 3 as it exits, whatever way it exits. */
const REPORT = `data:text/javascript,${encodeURIComponent(
  "import { writeSync } from 'node:fs';" +
    "process.on('exit', () => { const u = process.resourceUsage();" +
    ' writeSync(3, JSON.stringify({ cpuMs: (u.userCPUTime + u.systemCPUTime) / 1000, rssKb: u.maxRSS })); });',
)}`;

export interface Sample {
  readonly wallMs: number;
  readonly cpuMs: number;
  readonly rssKb: number;
}

/**
 * Runs `node <args>` in `cwd` (stdout ignored), with `env` added to this process's environment; rejects with its
 * stderr when it exits other than 0.
 */
export function runMeasured(args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Sample> {
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, ['--import', REPORT, ...args], {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let reported = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.stdio[3]?.on('data', (chunk: Buffer) => {
    reported += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
      child.on('close', () => {
        if (code !== 0) reject(new Error(`node ${args.join(' ')} exited with ${code}:\n${stderr}`));
        else resolve({ wallMs, ...(JSON.parse(reported) as { cpuMs: number; rssKb: number }) });
      });
    });
  });
}
