/**
 * The runtime's own cost: 1M records through three pass-through stages into a counting sink, with the
 * records built before the clock starts (so only batching, credit, acks and RxJS are measured), then
 * the same from the `generator` source into the `blackhole` sink (what a user sees).
 * Usage: node bench/runtime.ts [--records N]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PipelineSpec, StageSpec } from '../engine/config/types.ts';
import { parseInputRef } from '../engine/graph/graph.ts';
import { defineSink, defineSource, defineTransform, type OperatorDefinition } from '../engine/operator.ts';
import type { EtlRecord } from '../engine/record.ts';
import { DEFAULT_RETRY } from '../engine/retry.ts';
import { runPipeline } from '../engine/runtime/run.ts';
import { findOperator } from '../operators/registry.ts';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const total = arg('records', 1_000_000);
const batchSize = 1024;

const prebuilt: EtlRecord[][] = [];
for (let i = 0; i < total; i += batchSize) {
  const batch: EtlRecord[] = [];
  for (let j = i; j < Math.min(total, i + batchSize); j++) batch.push({ id: j, message: 'x' });
  prebuilt.push(batch);
}

const memorySource = defineSource({
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
let counted = 0;
const counter = defineSink({
  type: 'bench_count',
  stability: 'alpha',
  summary: 'counts',
  schema: { $id: 'bench_count', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  create: () => ({
    write(records: EtlRecord[]) {
      counted += records.length;
    },
  }),
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
    position: { file: 'bench', line: 0, column: 0 },
  };
}

function spec(name: string, source: StageSpec, sink: StageSpec, dataDir: string): PipelineSpec {
  return {
    name,
    file: 'bench',
    settings: {
      dataDir,
      checkpointIntervalMs: 1000,
      batchMaxRecords: batchSize,
      maxBatchesInFlight: 8,
      shutdownTimeoutMs: 30_000,
    },
    telemetry: { traces: 'none' },
    secrets: [],
    stages: [
      source,
      stage('p1', pass as OperatorDefinition, [source.id]),
      stage('p2', pass as OperatorDefinition, ['p1']),
      stage('p3', pass as OperatorDefinition, ['p2']),
      { ...sink, inputs: [parseInputRef('p3')] },
    ],
  };
}

async function measure(label: string, pipeline: PipelineSpec, expected: () => number): Promise<void> {
  const started = process.hrtime.bigint();
  const result = await runPipeline(pipeline);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (!result.ok) throw result.error;
  const records = expected();
  if (records !== total) throw new Error(`${label}: expected ${total} records, counted ${records}`);
  console.log(
    `${label}: ${Math.round(records / seconds).toLocaleString('en-US')} records/s (${records} records in ${seconds.toFixed(3)} s)`,
  );
}

const dir = mkdtempSync(join(tmpdir(), 'etl-bench-'));
try {
  await measure(
    'runtime: memory -> 3 pass-through -> count',
    spec(
      'bench-runtime',
      stage('src', memorySource as OperatorDefinition, []),
      stage('sink', counter as OperatorDefinition, []),
      join(dir, 'a'),
    ),
    () => counted,
  );
  const generator = findOperator('source', 'generator');
  const blackhole = findOperator('sink', 'blackhole');
  if (generator && blackhole) {
    const stats = { n: 0 };
    const run = await (async () => {
      const pipeline = spec(
        'bench-generator',
        stage('gen', generator, [], {
          count: total,
          seed: 1,
          format: generator.examples[0] && (generator.examples[0] as { format?: string }).format,
        }),
        stage('hole', blackhole, []),
        join(dir, 'b'),
      );
      const started = process.hrtime.bigint();
      const result = await runPipeline(pipeline);
      if (!result.ok) throw result.error;
      stats.n = result.stats.sinks.hole ?? 0;
      return Number(process.hrtime.bigint() - started) / 1e9;
    })();
    console.log(
      `runtime: generator -> 3 pass-through -> blackhole: ${Math.round(stats.n / run).toLocaleString('en-US')} records/s (${stats.n} records in ${run.toFixed(3)} s)`,
    );
  } else {
    console.log('runtime: generator -> blackhole skipped (operators not registered)');
  }
  console.log(`runtime: peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
