/** The daemon in the test's process, on a loopback port of its own, and what its tests write and wait for. */
import { appendFile, readFile } from 'node:fs/promises';
import { writeLogFile } from '../../operators/sources/generator/write-file.ts';
import { type Daemon, type SecurityLayer, startDaemon } from '../../engine/serve/daemon.ts';

export interface TestDaemon extends Daemon {
  /** Everything it logged. */
  log(): string;
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Answer>;
}

export interface Answer {
  readonly status: number;
  // biome-ignore lint/suspicious/noExplicitAny: answers are checked field by field in the tests
  readonly body: any;
}

export async function daemon(
  options: { configDir?: string; host?: string; security?: SecurityLayer } = {},
): Promise<TestDaemon> {
  let log = '';
  const started = await startDaemon({
    port: 0,
    ...options,
    host: options.host ?? '127.0.0.1',
    logStream: {
      write: (chunk: string) => {
        log += chunk;
      },
    },
    // The watch brings changes; rescans would only make the tests' timing vary.
    rescanIntervalMs: 600_000,
    restartDelayMs: 50,
  });
  return Object.assign(started, {
    log: () => log,
    async call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
      const text = typeof body === 'string';
      const response = await fetch(`${started.url}${path}`, {
        method,
        headers:
          body === undefined ? headers : { 'content-type': text ? 'application/yaml' : 'application/json', ...headers },
        ...(body === undefined ? {} : { body: text ? body : JSON.stringify(body) }),
      });
      const type = response.headers.get('content-type') ?? '';
      return { status: response.status, body: type.includes('json') ? await response.json() : await response.text() };
    },
  });
}

export { until } from '../support/until.ts';

/** `count` nginx lines numbered `seq=from…`, appended to `path`. */
export async function appendLines(path: string, from: number, count: number): Promise<void> {
  const scratch = `${path}.part`;
  await writeLogFile(scratch, from + count, {
    format: 'nginx_combined',
    seed: 5,
    malformed_ratio: 0,
    with_sequence: true,
  });
  const lines = (await readFile(scratch, 'utf8')).split('\n').slice(from, from + count);
  await appendFile(path, `${lines.join('\n')}\n`);
}

export interface PipelineDoc {
  readonly name: string;
  readonly dataDir: string;
  readonly log: string;
  /** The sink, as a YAML flow mapping's entries (`type: file, path: …`). */
  readonly sink: string;
  readonly checkpointSeconds?: number;
  /** Extra stages under `operators`, each a line `id: { … }`; the sink reads the last one. */
  readonly parse?: boolean;
}

export function pipeline(doc: PipelineDoc): string {
  const input = doc.parse === false ? 'logs' : 'parsed';
  return `apiVersion: etl/v1
kind: Pipeline
metadata:
  name: ${doc.name}
spec:
  settings:
    data_dir: ${doc.dataDir}
    checkpoint_interval_seconds: ${doc.checkpointSeconds ?? 0.2}
  sources:
    logs: { type: file, paths: ["${doc.log}"], follow: true, poll_interval_ms: 50 }
${doc.parse === false ? '' : '  operators:\n    parsed: { type: parse, inputs: [logs], format: auto }\n'}  sinks:
    out: { inputs: [${input}], ${doc.sink} }
`;
}

/** Lines of a JSON-lines file, and how many distinct `seq=` they hold. */
export async function jsonLines(path: string): Promise<{ lines: number; distinct: number }> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const lines = text.split('\n').filter(Boolean);
  const seqs = new Set(lines.map((l) => /seq=(\d+)/.exec(l)?.[1]));
  return { lines: lines.length, distinct: seqs.size };
}
