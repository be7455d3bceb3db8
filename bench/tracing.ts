/**
 * The cost of tracing: prebuilt batches of 128 records → 3 pass-through stages → blackhole (five spans per
 * batch, the worst case for spans per record), with tracing off, sampled at 1%, and at 100%, exporting over
 * OTLP/HTTP to a collector in the parent process. Each case runs in its own process, the cases interleaved,
 * three rounds; the figure is the median CPU time (user + system) of the run and the final export, which moves
 * less than wall time on a shared machine.
 * Usage: node bench/tracing.ts [--records N] [--rounds N]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { toSettings } from '../engine/config/settings.ts';
import type { PipelineSpec, StageSpec, TelemetrySettings } from '../engine/config/types.ts';
import { parseInputRef } from '../engine/graph/graph.ts';
import { defineSink, defineSource, defineTransform, type OperatorDefinition } from '../engine/operator.ts';
import type { EtlRecord } from '../engine/record.ts';
import { DEFAULT_RETRY } from '../engine/retry.ts';
import { runPipeline } from '../engine/runtime/run.ts';
import { createTelemetry } from '../engine/telemetry/telemetry.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const total = Number(arg('records') ?? 1_000_000);
const rounds = Number(arg('rounds') ?? 3);
const batchSize = 128;
const CASES = { off: undefined, 'sampled 1%': 0.01, 'sampled 100%': 1 } as const;
type Case = keyof typeof CASES;

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

const drop = defineSink({
  type: 'bench_drop',
  stability: 'alpha',
  summary: 'drops what it is given',
  schema: { $id: 'bench_drop', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  create: () => ({ write: () => {} }),
});

function stage(id: string, def: OperatorDefinition, inputs: string[]): StageSpec {
  return {
    id,
    kind: def.kind,
    type: def.type,
    definition: def,
    inputs: inputs.map(parseInputRef),
    options: {},
    onError: def.kind === 'sink' ? 'retry' : 'dead_letter',
    retry: DEFAULT_RETRY,
    maxInFlight: 1,
    workers: 1,
    position: { file: 'bench', line: 0, column: 0 },
  };
}

async function runCase(which: Case, collector: string): Promise<void> {
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
  const ratio = CASES[which];
  const settings: TelemetrySettings =
    ratio === undefined ? { traces: 'none' } : { traces: 'otlp', otlpEndpoint: collector, sampleRatio: ratio };
  const dir = mkdtempSync(join(tmpdir(), 'etl-bench-tracing-'));
  const spec: PipelineSpec = {
    name: 'bench-tracing',
    file: 'bench',
    settings: {
      ...toSettings(undefined),
      dataDir: dir,
      checkpointIntervalMs: 1000,
      batchMaxRecords: batchSize,
      maxBatchesInFlight: 8,
      shutdownTimeoutMs: 30_000,
    },
    telemetry: settings,
    secrets: [],
    resources: [],
    stages: [
      stage('src', memory as OperatorDefinition, []),
      stage('p1', pass as OperatorDefinition, ['src']),
      stage('p2', pass as OperatorDefinition, ['p1']),
      stage('p3', pass as OperatorDefinition, ['p2']),
      stage('sink', drop as OperatorDefinition, ['p3']),
    ],
  };
  try {
    const setup = process.cpuUsage();
    const telemetry = await createTelemetry(settings, { env: {}, shutdownTimeoutMs: 30_000 });
    const loaded = process.cpuUsage(setup);
    const cpu = process.cpuUsage();
    const result = await runPipeline(spec, { telemetry });
    await telemetry.shutdown();
    const used = process.cpuUsage(cpu);
    if (!result.ok) throw result.error;
    const seconds = (usage: NodeJS.CpuUsage) => (usage.user + usage.system) / 1e6;
    process.stdout.write(`${JSON.stringify({ which, cpuSeconds: seconds(used), setupSeconds: seconds(loaded) })}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Figures {
  readonly cpuSeconds: number;
  readonly setupSeconds: number;
}

function child(which: Case, collector: string): Promise<Figures> {
  const self = fileURLToPath(import.meta.url);
  return new Promise((resolve, reject) => {
    const proc = spawn(
      process.execPath,
      [self, '--case', which, '--records', String(total), '--collector', collector],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    proc.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
    });
    proc.on('close', (code) => {
      if (code !== 0) reject(new Error(`${which} exited with ${code}`));
      else resolve(JSON.parse(out.trim()) as Figures);
    });
  });
}

const only = arg('case') as Case | undefined;
if (only) {
  await runCase(only, arg('collector') as string);
} else {
  let spans = 0;
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      spans += (
        Buffer.concat(chunks)
          .toString('utf8')
          .match(/"spanId"/g) ?? []
      ).length;
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const collector = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const times = new Map<Case, Figures[]>();
  for (let round = 0; round < rounds; round++) {
    for (const which of Object.keys(CASES) as Case[]) {
      const figures = await child(which, collector);
      times.set(which, [...(times.get(which) ?? []), figures]);
    }
  }
  server.close();
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
  const off = median((times.get('off') ?? []).map((f) => f.cpuSeconds));
  for (const [which, figures] of times) {
    const cpu = median(figures.map((f) => f.cpuSeconds));
    const setup = median(figures.map((f) => f.setupSeconds));
    const extra = which === 'off' ? '' : `, ${(((cpu - off) / off) * 100).toFixed(1)}% over off`;
    console.log(
      `tracing ${which}: run ${cpu.toFixed(3)} s CPU${extra}; setup (loading the SDK) ${setup.toFixed(3)} s CPU` +
        ` (medians of ${figures.length}; ${total} records in batches of ${batchSize}, 5 stages)`,
    );
  }
  console.log(`spans received by the collector over all rounds: ${spans}`);
}
