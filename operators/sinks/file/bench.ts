/**
 * Throughput of the file sink alone: `node operators/sinks/file/bench.ts [records]`.
 * Batches of 1024 small records (the default batch size), a checkpoint (fsync) every second as the runtime
 * does, into a temporary directory that is removed afterwards.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EtlRecord } from '../../../engine/record.ts';
import { createFileSink } from './file.ts';
import type { FileSinkOptions } from './schema.ts';
import { recordingContext } from '../../../test/support/context.ts';

const total = Number(process.argv[2] ?? 3_000_000);
const BATCH = 1024;
const METHODS = ['GET', 'POST', 'HEAD'];

function batch(start: number): EtlRecord[] {
  const records: EtlRecord[] = new Array(BATCH);
  for (let i = 0; i < BATCH; i++) {
    const n = start + i;
    records[i] = { id: n, ip: '10.0.0.1', method: METHODS[n % 3], status: 200 + (n % 5), bytes: n % 4096 };
  }
  return records;
}

const batches = Array.from({ length: 64 }, (_, i) => batch(i * BATCH));
const ignore = { deadLetter: () => {} };

async function run(label: string, extra: Partial<FileSinkOptions>, ext: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'etl-file-bench-'));
  const path = join(dir, `out.${ext}`);
  const options: FileSinkOptions = { path, format: 'jsonl', compression: 'none', append: false, ...extra };
  const sink = createFileSink(options, recordingContext());
  await sink.open?.();
  await sink.restore?.(undefined, undefined);
  const started = performance.now();
  let lastCheckpoint = started;
  let id = 0;
  for (let written = 0; written < total; written += BATCH) {
    await sink.write(batches[(written / BATCH) % batches.length] as EtlRecord[], ignore);
    if (performance.now() - lastCheckpoint >= 1000) {
      await sink.prepareCommit?.({ id: ++id, positions: {} }, ignore);
      lastCheckpoint = performance.now();
    }
  }
  await sink.prepareCommit?.({ id: ++id, positions: {} }, ignore);
  await sink.close?.();
  const seconds = (performance.now() - started) / 1000;
  const bytes = statSync(path).size;
  console.log(
    `${label.padEnd(12)} ${Math.round(total / seconds)
      .toLocaleString('en')
      .padStart(11)} records/s` +
      `  ${(bytes / seconds / 2 ** 20).toFixed(1).padStart(6)} MiB/s written  (${(bytes / 2 ** 20).toFixed(0)} MiB)`,
  );
  rmSync(dir, { recursive: true, force: true });
}

await run('jsonl', {}, 'jsonl');
await run('jsonl gzip', { compression: 'gzip' }, 'jsonl.gz');
await run('csv', { format: 'csv' }, 'csv');
