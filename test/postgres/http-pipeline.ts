/** http → parse(common) → postgres server, loaded from YAML and run in the test's process, for the http source's tests. */
import { createServer } from 'node:net';
import { join } from 'node:path';
import { expect } from 'vitest';
import { loadPipelinesFromString } from '../../engine/config/load.ts';
import type { Logger } from '../../engine/operator.ts';
import { type RunResult, runPipeline } from '../../engine/runtime/run.ts';
import { PG_URL } from './helpers.ts';

export interface HttpRun {
  /** Where to POST. */
  readonly url: string;
  readonly stop: AbortController;
  readonly abort: AbortController;
  readonly done: Promise<RunResult>;
}

export interface HttpPipeline {
  readonly name: string;
  /** The data directory's parent (the pipeline file's directory). */
  readonly dir: string;
  readonly schema: string;
  /** Appended inside the source's, the settings' and the sink's flow mappings. */
  readonly source?: string;
  readonly settings?: string;
  readonly sink?: string;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Starts the pipeline and resolves once the source listens (the table exists by then); `cleanups` gets what stops
 * the run and waits for it.
 */
export async function startHttpPipeline(p: HttpPipeline, cleanups: Array<() => Promise<void>>): Promise<HttpRun> {
  const port = await freePort();
  const { pipelines, diagnostics } = await loadPipelinesFromString(
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: ${p.name} }
spec:
  settings: { data_dir: ${join(p.dir, '.etl')}, checkpoint_interval_seconds: 0.1${p.settings ?? ''} }
  sources:
    pushed: { type: http, listen: "127.0.0.1:${port}"${p.source ?? ''} }
  operators:
    parsed: { type: parse, inputs: [pushed], format: common }
  sinks:
    store: { type: postgres, inputs: [parsed], url: "${PG_URL}", schema: ${p.schema}, table: access_logs${p.sink ?? ''} }
`,
    join(p.dir, 'pipeline.yaml'),
  );
  expect(diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  const spec = pipelines[0];
  if (!spec) throw new Error('no pipeline');
  let listening!: () => void;
  const ready = new Promise<void>((resolve) => {
    listening = resolve;
  });
  const quiet = () => {};
  const logger = (): Logger => ({
    debug: quiet,
    info: (message) => {
      if (message.startsWith('listening on')) listening();
    },
    warn: quiet,
    error: quiet,
  });
  const stop = new AbortController();
  const abort = new AbortController();
  const done = runPipeline(spec, { stop: stop.signal, abort: abort.signal, logger });
  cleanups.push(async () => {
    stop.abort();
    await done;
  });
  await Promise.race([ready, done.then((r) => Promise.reject(r.error ?? new Error('the run ended')))]);
  return { url: `http://127.0.0.1:${port}/ingest`, stop, abort, done };
}
