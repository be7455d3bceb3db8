/**
 * A slow sink (one batch per 50 ms) fed from a multi-GB file: memory stays bounded and the source
 * reads only a few batches ahead of what the sink has taken, as Vector's topology backpressure tests check.
 */
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPipelinesFromString } from '../../engine/config/load.ts';
import { runPipeline } from '../../engine/runtime/run.ts';
import { registry } from '../../operators/all.ts';
import { collected, testOperators } from '../support/operators.ts';

const GIB = 1024 ** 3;
const dir = mkdtempSync(join(tmpdir(), 'etl-backpressure-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeBigFile(path: string, bytes: number): void {
  const lines: string[] = [];
  for (let i = 0; i < 20_000; i++) {
    lines.push(
      `192.0.2.${i % 250} - - [10/Oct/2026:13:55:36 +0000] "GET /static/app.${i}.js HTTP/1.1" 200 ${1000 + i}`,
    );
  }
  const chunk = Buffer.from(`${lines.join('\n')}\n`);
  const fd = openSync(path, 'w');
  try {
    for (let written = 0; written < bytes; written += chunk.length) writeSync(fd, chunk);
  } finally {
    closeSync(fd);
  }
}

describe('backpressure', () => {
  it('bounds memory and read-ahead with a slow sink and a 2 GiB file', async () => {
    const input = join(dir, 'big.log');
    writeBigFile(input, 2 * GIB);
    const batch = 500;
    const credit = 4;
    const { pipelines, diagnostics } = await loadPipelinesFromString(
      `apiVersion: etl/v1
kind: Pipeline
metadata: { name: slow }
spec:
  settings: { data_dir: ${join(dir, '.etl')}, batch_max_records: ${batch}, max_batches_in_flight: ${credit} }
  sources:
    big: { type: file, paths: ["${input}"] }
  sinks:
    slow: { type: test_collect, inputs: [big], name: slow, delay_ms: 50 }
`,
      join(dir, 'pipeline.yaml'),
      { registry: [...registry, ...testOperators] },
    );
    expect(diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const spec = pipelines[0];
    if (!spec) throw new Error('no pipeline');

    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    let maxLead = 0;
    let read = 0;
    const stop = new AbortController();
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
      const taken = collected.get('slow')?.length ?? 0;
      maxLead = Math.max(maxLead, read - taken);
      if (taken >= 30 * batch) stop.abort();
    }, 5);
    const result = await runPipeline(spec, {
      stop: stop.signal,
      onStats: (stats) => {
        read = stats.recordsIn;
      },
    });
    clearInterval(sampler);
    expect(result.ok, result.error?.message).toBe(true);
    expect(result.stopped).toBe(true);
    // The source may hold the batches in flight plus the one it is preparing.
    expect(maxLead).toBeLessThanOrEqual((credit + 1) * batch);
    expect(result.stats.bytesRead).toBeLessThan(64 * 1024 * 1024);
    expect(peak - baseline).toBeLessThan(150 * 1024 * 1024);
  });
});
