/**
 * What a user times (issue 16): the whole `etl apply` process of file → parse(format: auto) → blackhole over 1M
 * realistic combined lines (bench/enrich.ts's: long agents and referrers, IPv6, query strings), start-up included,
 * against a plain Node regex loop over the same file (bench/_regex-loop.ts), with `workers: 1` and `workers: N` on
 * the parse stage. Rounds are interleaved (one of each in turn) so that other load falls on all alike. Per case:
 * median wall time (spawn to exit) and lines/s, CPU time of the whole process (every thread), peak RSS, and the
 * ratio of its rate to the regex loop's. `etl` runs with the V8 flags the `etl` command starts node with (bin/runtime.js
 * NODE_FLAGS), as a user's run does; `--no-node-flags` runs it without them.
 * Usage: node bench/whole-process.ts [--lines 1000000] [--rounds 3] [--workers 2] [--no-node-flags]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from '../bin/runtime.js';
import { runMeasured, type Sample } from './_measured-child.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const lines = Number(arg('lines') ?? 1_000_000);
const rounds = Number(arg('rounds') ?? 3);
const workers = Number(arg('workers') ?? 2);
const nodeFlags = process.argv.includes('--no-node-flags') ? [] : NODE_FLAGS;
const here = fileURLToPath(new URL('.', import.meta.url));
const etl = join(here, '..', 'bin', 'etl.js');

function pipeline(dir: string, file: string, w: number): string {
  const path = join(dir, `parse-${w}.yaml`);
  writeFileSync(
    path,
    [
      'apiVersion: etl/v1',
      'kind: Pipeline',
      `metadata: { name: whole-process-${w} }`,
      'spec:',
      `  sources: { lines: { type: file, paths: [${JSON.stringify(file)}] } }`,
      `  operators: { parsed: { type: parse, inputs: [lines], format: auto, workers: ${w} } }`,
      '  sinks: { out: { type: blackhole, inputs: [parsed] } }',
      '',
    ].join('\n'),
  );
  return path;
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? Number.NaN;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'etl-bench-whole-'));
  try {
    const file = join(dir, 'access.log');
    const written = spawnSync(process.execPath, [join(here, 'enrich.ts'), '--write', file, '--lines', `${lines}`], {
      stdio: 'inherit',
    });
    if (written.status !== 0) throw new Error('could not write the lines');
    const cases = [
      { name: 'regex_loop', args: [join(here, '_regex-loop.ts'), file] },
      ...[...new Set([1, workers])].map((w) => ({
        name: `etl_workers_${w}`,
        args: [...nodeFlags, etl, 'apply', '--no-progress', pipeline(dir, file, w)],
      })),
    ];
    const samples = new Map<string, Sample[]>(cases.map((c) => [c.name, []]));
    for (let r = 0; r < rounds; r++) {
      for (const c of cases) {
        // A fresh working directory per etl run: a first run, no checkpoint to resume from.
        const cwd = mkdtempSync(join(dir, 'run-'));
        samples.get(c.name)?.push(await runMeasured(c.args, cwd));
        rmSync(cwd, { recursive: true, force: true });
      }
    }
    console.log(`whole_process_lines: ${lines} realistic combined lines, ${rounds} interleaved rounds`);
    const regexWall = median((samples.get('regex_loop') ?? []).map((s) => s.wallMs));
    for (const c of cases) {
      const s = samples.get(c.name) ?? [];
      const wall = median(s.map((x) => x.wallMs));
      const walls = s.map((x) => x.wallMs);
      console.log(
        `whole_process_${c.name}: ${Math.round((lines / wall) * 1000)} lines/s (wall median ${(wall / 1000).toFixed(2)} s, ` +
          `${(Math.min(...walls) / 1000).toFixed(2)}–${(Math.max(...walls) / 1000).toFixed(2)}), ` +
          `cpu ${(median(s.map((x) => x.cpuMs)) / 1000).toFixed(2)} s, peak RSS ${Math.round(median(s.map((x) => x.rssKb)) / 1024)} MiB, ` +
          `${(regexWall / wall).toFixed(2)}× the regex loop`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
