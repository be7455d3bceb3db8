/**
 * The runtime's own cost: 1M records through three pass-through stages, each case in its own process so
 * that its peak RSS is its own.
 * - memory:    prebuilt batches (built before the clock starts) → 3 × pass → counting sink: only batching,
 *              credit, acks and RxJS are measured.
 * - generator: the `generator` source → 3 × pass → `blackhole`.
 * - file:      a generated file → `file` source → 3 × pass → `blackhole`.
 * Usage: node bench/runtime.ts [--records N] [--case memory|generator|file]
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { toSettings } from '../engine/config/settings.ts';
import type { PipelineSpec, StageSpec } from '../engine/config/types.ts';
import { parseInputRef } from '../engine/graph/graph.ts';
import { defineSource, defineTransform, type OperatorDefinition } from '../engine/operator.ts';
import type { EtlRecord } from '../engine/record.ts';
import { DEFAULT_RETRY } from '../engine/retry.ts';
import { createAjv } from '../engine/schema/ajv.ts';
import { runPipeline } from '../engine/runtime/run.ts';
import { createLineMaker } from '../operators/sources/generator/lines.ts';
import { findOperator } from '../operators/all.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const total = Number(arg('records') ?? 1_000_000);
const batchSize = 1024;
const CASES = ['memory', 'generator', 'file'] as const;
type Case = (typeof CASES)[number];

const pass = defineTransform({
  type: 'bench_pass',
  stability: 'alpha',
  summary: 'forwards batches',
  schema: { $id: 'bench_pass', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  outputs: { default: 'any' },
  create: () => ({ process: (records: EtlRecord[]) => ({ default: records }) }),
});

function stage(
  id: string,
  def: OperatorDefinition,
  inputs: string[],
  options: Record<string, unknown> = {},
): StageSpec {
  return {
    id,
    kind: def.kind,
    type: def.type,
    definition: def,
    inputs: inputs.map(parseInputRef),
    options,
    onError: def.kind === 'sink' ? 'retry' : 'dead_letter',
    retry: DEFAULT_RETRY,
    maxInFlight: 1,
    workers: 1,
    position: { file: 'bench', line: 0, column: 0 },
  };
}

function pipeline(source: StageSpec, sink: StageSpec, dataDir: string): PipelineSpec {
  return {
    name: 'bench-runtime',
    file: 'bench',
    settings: {
      ...toSettings(undefined),
      dataDir,
      checkpointIntervalMs: 1000,
      batchMaxRecords: batchSize,
      maxBatchesInFlight: 8,
      shutdownTimeoutMs: 30_000,
    },
    telemetry: { traces: 'none' },
    secrets: [],
    resources: [],
    stages: [
      source,
      stage('p1', pass as OperatorDefinition, [source.id]),
      stage('p2', pass as OperatorDefinition, ['p1']),
      stage('p3', pass as OperatorDefinition, ['p2']),
      { ...sink, inputs: [parseInputRef('p3')] },
    ],
  };
}

function required(kind: OperatorDefinition['kind'], type: string): OperatorDefinition {
  const def = findOperator(kind, type);
  if (!def) throw new Error(`${kind} ${type} is not registered`);
  return def;
}

/** Options as the loader would hand them over: validated, defaults applied. */
function withDefaults(def: OperatorDefinition, options: Record<string, unknown>): Record<string, unknown> {
  const copy = structuredClone(options);
  const validate = createAjv().compile(def.schema);
  if (!validate(copy)) throw new Error(`${def.type}: ${JSON.stringify(validate.errors)}`);
  return copy;
}

async function runCase(which: Case, dir: string): Promise<void> {
  const blackhole = stage('sink', required('sink', 'blackhole'), [], withDefaults(required('sink', 'blackhole'), {}));
  let spec: PipelineSpec;
  let label: string;
  if (which === 'memory') {
    const prebuilt: EtlRecord[][] = [];
    for (let i = 0; i < total; i += batchSize) {
      const batch: EtlRecord[] = [];
      for (let j = i; j < Math.min(total, i + batchSize); j++) batch.push({ id: j, message: 'x' });
      prebuilt.push(batch);
    }
    const memory = defineSource({
      type: 'bench_memory',
      stability: 'alpha',
      summary: 'emits prebuilt batches',
      schema: { $id: 'bench_memory', type: 'object' } as const,
      examples: [],
      outputs: { default: 'any' },
      create: () => ({
        async run(out) {
          for (let i = 0; i < prebuilt.length; i++) await out.emit(prebuilt[i] as EtlRecord[], i + 1);
        },
      }),
    });
    spec = pipeline(stage('src', memory as OperatorDefinition, []), blackhole, dir);
    label = 'prebuilt batches -> 3 pass-through -> blackhole';
  } else if (which === 'generator') {
    const generator = required('source', 'generator');
    const options = withDefaults(generator, { format: 'nginx_combined', count: total, seed: 1 });
    spec = pipeline(stage('src', generator, [], options), blackhole, dir);
    label = 'generator -> 3 pass-through -> blackhole';
  } else {
    const file = join(dir, 'input.log');
    const maker = createLineMaker({ format: 'nginx_combined', seed: 1 });
    const fd = openSync(file, 'w');
    for (let i = 0; i < total; ) {
      let chunk = '';
      for (const end = Math.min(total, i + 10_000); i < end; i++) chunk += `${maker.next()}\n`;
      writeSync(fd, chunk);
    }
    closeSync(fd);
    const source = required('source', 'file');
    const options = withDefaults(source, { paths: [file] });
    spec = pipeline(stage('src', source, [], options), blackhole, dir);
    label = 'file -> 3 pass-through -> blackhole';
  }
  const started = process.hrtime.bigint();
  const result = await runPipeline(spec);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (!result.ok) throw result.error;
  const records = result.stats.sinks.sink ?? 0;
  if (records !== total) throw new Error(`${label}: expected ${total} records, the sink took ${records}`);
  const rss = process.resourceUsage().maxRSS / 1024;
  console.log(
    `runtime ${which}: ${Math.round(records / seconds).toLocaleString('en-US')} records/s (${label}; ${records} in ${seconds.toFixed(3)} s; peak RSS ${rss.toFixed(0)} MiB)`,
  );
}

const only = arg('case') as Case | undefined;
if (only) {
  const dir = mkdtempSync(join(tmpdir(), 'etl-bench-'));
  try {
    await runCase(only, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
} else {
  const self = fileURLToPath(import.meta.url);
  for (const which of CASES) {
    const child = spawnSync(process.execPath, [self, '--case', which, '--records', String(total)], {
      stdio: 'inherit',
    });
    if (child.status !== 0) process.exitCode = 1;
  }
}
