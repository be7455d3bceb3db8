/**
 * What `anonymize` costs: the same generated file (1% malformed lines) through `file → parse → blackhole` and
 * `file → parse → anonymize → blackhole` (defaults: IPs truncated, users dropped, URLs and dead letters
 * scrubbed; and with `pseudonymize`), each run in its own process, alternating; the figure is the median of each.
 * Usage: node bench/anonymize.ts [--lines N] [--rounds N]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { enableCompileCache } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPipelinesFromString } from '../engine/config/load.ts';
import { formatDiagnostic, hasErrors } from '../engine/diagnostics.ts';
import { runPipeline } from '../engine/runtime/run.ts';
import { writeLogFile } from '../operators/sources/generator/write-file.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const lines = Number(arg('lines') ?? 200_000);
const rounds = Number(arg('rounds') ?? 3);
const VARIANTS = ['parse', 'parse+anonymize', 'parse+anonymize(pseudonymize)'] as const;
type Variant = (typeof VARIANTS)[number];

const PSEUDONYMIZE =
  '      ip: { mode: pseudonymize }\n      user: { mode: pseudonymize }\n' +
  // biome-ignore lint/suspicious/noTemplateCurlyInString: pipeline text, interpolated by the loader
  '      key: ${secret:BENCH_ANONYMIZE_KEY}\n      key_id: k1\n';

function pipelineYaml(dir: string, variant: Variant): string {
  const anonymize =
    variant === 'parse'
      ? ''
      : `    anon:
      type: anonymize
      inputs: [parsed, parsed.dead_letter]
${variant === 'parse+anonymize' ? '' : PSEUDONYMIZE}`;
  const read = variant === 'parse' ? '[parsed, parsed.dead_letter]' : '[anon, anon.dead_letter]';
  return `apiVersion: etl/v1
kind: Pipeline
metadata: { name: bench-anonymize }
spec:
  settings: { data_dir: ${join(dir, '.etl')} }
  sources:
    logs: { type: file, paths: [${join(dir, 'access.log')}] }
  operators:
    parsed: { type: parse, inputs: [logs], format: auto }
${anonymize}  sinks:
    out: { type: blackhole, inputs: ${read} }
`;
}

/** One run in this process: prints its lines/s. */
async function once(dir: string, variant: Variant): Promise<void> {
  const { pipelines, diagnostics } = await loadPipelinesFromString(pipelineYaml(dir, variant), join(dir, 'p.yaml'), {
    env: { BENCH_ANONYMIZE_KEY: 'bench-key-0123456789abcdef' },
  });
  if (hasErrors(diagnostics)) throw new Error(diagnostics.map(formatDiagnostic).join('\n'));
  const spec = pipelines[0];
  if (!spec) throw new Error('no pipeline');
  try {
    const started = process.hrtime.bigint();
    const result = await runPipeline(spec);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (!result.ok) throw result.error;
    if (result.stats.recordsIn !== lines) throw new Error(`read ${result.stats.recordsIn} of ${lines} lines`);
    console.log(Math.round(lines / seconds));
  } finally {
    rmSync(join(dir, '.etl'), { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

const childDir = arg('dir');
if (childDir) {
  enableCompileCache();
  await once(childDir, arg('variant') as Variant);
} else {
  const dir = mkdtempSync(join(tmpdir(), 'etl-bench-anonymize-'));
  try {
    await writeLogFile(join(dir, 'access.log'), lines, { seed: 11, malformed_ratio: 0.01 });
    const self = fileURLToPath(import.meta.url);
    const rates = new Map<Variant, number[]>(VARIANTS.map((v) => [v, []]));
    // Round -1 warms the compile cache and is not counted; the order turns each round.
    for (let round = -1; round < rounds; round++) {
      const shift = ((round % VARIANTS.length) + VARIANTS.length) % VARIANTS.length;
      const order = [...VARIANTS.slice(shift), ...VARIANTS.slice(0, shift)];
      for (const variant of order) {
        const args = [self, '--dir', dir, '--lines', String(lines), '--variant', variant];
        const child = spawnSync(process.execPath, args, { encoding: 'utf8' });
        if (child.status !== 0) throw new Error(`${variant}: ${child.stderr || child.stdout}`);
        if (round >= 0) rates.get(variant)?.push(Number(child.stdout.trim()));
      }
    }
    const base = median(rates.get('parse') ?? []);
    for (const variant of VARIANTS) {
      const rate = median(rates.get(variant) ?? []);
      const change = ((rate - base) / base) * 100;
      console.log(
        `anonymize: file -> ${variant.padEnd(30)} ${rate.toLocaleString('en-US').padStart(9)} lines/s` +
          (variant === 'parse' ? '' : ` (${change >= 0 ? '+' : ''}${change.toFixed(1)}%)`),
      );
    }
    console.log(`(median of ${rounds} alternating runs of ${lines.toLocaleString('en-US')} lines, 1% malformed)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
