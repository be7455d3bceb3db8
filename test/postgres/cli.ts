/** Helpers of the CLI-level suites: a generated log file, a pipeline document, `etl apply` as a child process. */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeLogFile } from '../../operators/sources/generator/write-file.ts';

export const ETL = resolve(import.meta.dirname, '../../bin/etl.js');

/** `lines` nginx combined lines, each with `seq=<n>` in its query string. */
export function writeLog(path: string, lines: number, seed = 7): Promise<void> {
  return writeLogFile(path, lines, { format: 'nginx_combined', seed, malformed_ratio: 0, with_sequence: true });
}

export interface PipelineFile {
  readonly dir: string;
  readonly log: string;
  /** Sink options as YAML flow-mapping entries, e.g. `url: …, schema: …`. */
  readonly sink: string;
  readonly name?: string;
  readonly checkpointIntervalSeconds?: number;
  /** A second postgres sink of the same records, its options as flow-mapping entries. */
  readonly secondSink?: string;
}

export async function writePipeline(p: PipelineFile): Promise<string> {
  const file = join(p.dir, 'pipeline.yaml');
  await writeFile(
    file,
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: ${p.name ?? 'crashloop'} }
spec:
  settings:
    data_dir: ${join(p.dir, '.etl')}
    checkpoint_interval_seconds: ${p.checkpointIntervalSeconds ?? 0.2}
    batch_max_records: 500
    max_batches_in_flight: 4
  sources:
    logs: { type: file, paths: ["${p.log}"] }
  operators:
    parsed: { type: parse, inputs: [logs], format: auto }
  sinks:
    store: { type: postgres, inputs: [parsed], ${p.sink} }
${p.secondSink ? `    copy: { type: postgres, inputs: [parsed], ${p.secondSink} }\n` : ''}`,
  );
  return file;
}

export interface Run {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  stderr(): string;
}

export function apply(pipeline: string, env: NodeJS.ProcessEnv = {}): Run {
  const child = spawn(process.execPath, [ETL, 'apply', '--no-progress', pipeline], {
    env: { ...process.env, ETL_LOG_LEVEL: 'warn', DATABASE_URL: '', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  return { child, exited, stderr: () => err };
}

/** Resident memory of a process in MiB, from /proc. */
export async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}
