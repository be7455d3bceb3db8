/**
 * The file source under the real runtime: its positions go through the checkpoint store and come back
 * as `restoredPosition`, and a stopped run plus a rerun deliver every line exactly once.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import type { OperatorDefinition } from '../../../engine/operator.ts';
import { runPipeline } from '../../../engine/runtime/run.ts';
import { collected, collectSink } from '../../../test/support/operators.ts';
import { pipeline, stage } from '../../../test/support/spec.ts';
import fileSource from './index.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-file-runtime-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('file source through the runtime', () => {
  it('stopped midway and rerun, delivers every line of plain and gzip files exactly once', async () => {
    const total = 20000;
    const lines: string[] = [];
    for (let i = 0; i < total; i++) lines.push(`10.0.0.${i % 250} - - "GET /item?seq=${i} HTTP/1.1" 200 ${i}`);
    writeFileSync(join(dir, 'a.log'), `${lines.slice(0, total / 2).join('\n')}\n`);
    writeFileSync(join(dir, 'b.log.gz'), gzipSync(`${lines.slice(total / 2).join('\n')}\n`));
    const spec = pipeline(
      'file-runtime',
      join(dir, '.etl'),
      [
        stage({
          id: 'logs',
          def: fileSource as OperatorDefinition,
          options: {
            paths: [join(dir, '*.log*')],
            exclude: [],
            follow: false,
            start_at: 'beginning',
            poll_interval_ms: 250,
            max_line_bytes: 65536,
            partial_line_timeout_ms: 5000,
            rotate_wait_ms: 5000,
            max_open_files: 256,
            fingerprint_bytes: 256,
          },
        }),
        stage({
          id: 'out',
          def: collectSink as OperatorDefinition,
          inputs: ['logs'],
          options: { name: 'file-rt', delay_ms: 1 },
        }),
      ],
      { batchMaxRecords: 250 },
    );
    collected.set('file-rt', []);
    const stop = new AbortController();
    const watcher = setInterval(() => {
      if ((collected.get('file-rt')?.length ?? 0) >= 4000) stop.abort();
    }, 2);
    const first = await runPipeline(spec, { stop: stop.signal });
    clearInterval(watcher);
    expect(first.ok, first.error?.message).toBe(true);
    expect(first.stopped).toBe(true);
    const afterFirst = collected.get('file-rt')?.length ?? 0;
    expect(afterFirst).toBeLessThan(total);

    const second = await runPipeline(spec);
    expect(second.ok, second.error?.message).toBe(true);
    const messages = (collected.get('file-rt') ?? []).map((r) => String(r.message));
    expect(messages).toEqual(lines);

    const third = await runPipeline(spec);
    expect(third.ok).toBe(true);
    expect(collected.get('file-rt')).toHaveLength(total);
  });
});
