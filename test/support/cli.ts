/** Runs the `etl` CLI as a user would: a separate Node process, real files, real signals. */
import { type ChildProcess, spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

export const ETL_BIN = fileURLToPath(new URL('../../bin/etl.js', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** How to run the CLI: its working directory, environment added (a value undefined removes it), node's own arguments. */
export interface EtlRunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  nodeArgs?: readonly string[];
}

export function startEtl(
  args: string[],
  options: EtlRunOptions = {},
): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ETL_BIN, ...args], {
    cwd: options.cwd,
    env: { ...process.env, ETL_LOG_LEVEL: 'warn', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const done = new Promise<CliResult>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

export function etl(args: string[], options: EtlRunOptions = {}): Promise<CliResult> {
  return startEtl(args, options).done;
}

/**
 * Resolves with true once what `stream` emits from now on contains `text` (any output at all when `text`
 * is empty), or with false when the stream ends first. Reads in flowing mode, as `startEtl` does.
 */
export function outputSeen(stream: Readable, text = ''): Promise<boolean> {
  let seen = '';
  return new Promise((resolve) => {
    const finish = (found: boolean) => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      resolve(found);
    };
    const onData = (chunk: string | Buffer) => {
      seen += chunk.toString();
      if (seen.includes(text)) finish(true);
    };
    const onEnd = () => finish(false);
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
  });
}
