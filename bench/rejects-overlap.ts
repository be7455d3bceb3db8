/**
 * Does a file of rejects slow `file → parse → postgres` down? Both sinks `cut` at a checkpoint, so sources
 * run on while they commit; before the file sink could, pairing PostgreSQL with a rejects file (as the
 * quickstart and pipelines/web-access.yaml do) made every checkpoint drain the pipeline and wait.
 *
 * The same generated file (1% malformed lines) is loaded into a fresh table with and without a `rejects`
 * file sink, alternating, each run in its own process; the figure is the median of each.
 * Needs a PostgreSQL server: ETL_BENCH_PG_URL, else ETL_TEST_PG_URL, else postgres://postgres@127.0.0.1:5432/test.
 * Usage: node bench/rejects-overlap.ts [--lines N] [--rounds N]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { enableCompileCache } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { loadPipelinesFromString } from '../engine/config/load.ts';
import { formatDiagnostic, hasErrors } from '../engine/diagnostics.ts';
import { runPipeline } from '../engine/runtime/run.ts';
import { writeLogFile } from '../operators/sources/generator/write-file.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const lines = Number(arg('lines') ?? 500_000);
const rounds = Number(arg('rounds') ?? 3);
const url = process.env.ETL_BENCH_PG_URL ?? process.env.ETL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

function pipelineYaml(dir: string, schema: string, withRejects: boolean): string {
  return `apiVersion: etl/v1
kind: Pipeline
metadata: { name: bench-rejects }
spec:
  settings: { data_dir: ${join(dir, '.etl')} }
  sources:
    logs: { type: file, paths: [${join(dir, 'access.log')}] }
  operators:
    parsed: { type: parse, inputs: [logs], format: auto }
  sinks:
    store: { type: postgres, inputs: [parsed], url: "${url}", schema: ${schema}, partition: day }
${
  withRejects
    ? `    rejects: { type: file, inputs: [parsed.dead_letter, store.dead_letter], path: ${join(dir, 'rejects.jsonl')} }`
    : '    dropped: { type: blackhole, inputs: [parsed.dead_letter, store.dead_letter] }'
}
`;
}

/** One load in this process: prints `<lines/s> <checkpoints>`. */
async function once(dir: string, withRejects: boolean): Promise<void> {
  const schema = `bench_rejects_${process.pid}`;
  const { pipelines, diagnostics } = await loadPipelinesFromString(
    pipelineYaml(dir, schema, withRejects),
    join(dir, 'p.yaml'),
  );
  if (hasErrors(diagnostics)) throw new Error(diagnostics.map(formatDiagnostic).join('\n'));
  const spec = pipelines[0];
  if (!spec) throw new Error('no pipeline');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const started = process.hrtime.bigint();
    const result = await runPipeline(spec);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (!result.ok) throw result.error;
    if (result.stats.recordsIn !== lines) throw new Error(`read ${result.stats.recordsIn} of ${lines} lines`);
    console.log(`${Math.round(lines / seconds)} ${result.stats.checkpoints}`);
  } finally {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
    rmSync(join(dir, '.etl'), { recursive: true, force: true });
    rmSync(join(dir, 'rejects.jsonl'), { force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

const childDir = arg('dir');
if (childDir) {
  // As the CLI does (bin/etl.js): otherwise stripping the types of the modules a run loads lazily (the file
  // sink's, in one variant only) is timed as if it were throughput.
  enableCompileCache();
  await once(childDir, arg('rejects') === 'yes');
} else {
  const dir = mkdtempSync(join(tmpdir(), 'etl-bench-rejects-'));
  try {
    await writeLogFile(join(dir, 'access.log'), lines, { seed: 5, malformed_ratio: 0.01 });
    writeFileSync(join(dir, 'README'), 'bench/rejects-overlap.ts scratch directory\n');
    const self = fileURLToPath(import.meta.url);
    const rates: Record<'with' | 'without', number[]> = { with: [], without: [] };
    // Round -1 is a warm-up, not counted: it fills the compile cache and the server's caches for both.
    for (let round = -1; round < rounds; round++) {
      // Alternate which goes first, so a machine getting busier or quieter favours neither.
      const order: Array<'with' | 'without'> = round % 2 === 0 ? ['without', 'with'] : ['with', 'without'];
      for (const which of order) {
        const args = [self, '--dir', dir, '--lines', String(lines), '--rejects', which === 'with' ? 'yes' : 'no'];
        const child = spawnSync(process.execPath, args, { encoding: 'utf8' });
        if (child.status !== 0) throw new Error(`${which}: ${child.stderr || child.stdout}`);
        if (round >= 0) rates[which].push(Number(child.stdout.trim().split(' ')[0]));
      }
    }
    const without = median(rates.without);
    const withRejects = median(rates.with);
    const change = ((withRejects - without) / without) * 100;
    console.log(
      `rejects-overlap: file -> parse -> postgres ${without.toLocaleString('en-US')} lines/s without a rejects file sink, ` +
        `${withRejects.toLocaleString('en-US')} with one (${change >= 0 ? '+' : ''}${change.toFixed(1)}%; median of ${rounds} ` +
        `alternating runs of ${lines.toLocaleString('en-US')} lines each, 1% malformed)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
