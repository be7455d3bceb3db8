/**
 * One run of a dedupe pipeline in a process of its own, for the crash loop (dedupe.crash.slow.test.ts):
 * a source of records `{ i, n }` where every odd record repeats the key `n` of an even record about a
 * thousand records before, dedupe on `n` (memory or Redis store), the file sink (exactly once).
 * `node crash-run.ts <dataDir> <output> <count> <memory|redis> [redis key prefix]`; exits 0 when done.
 */
import { defineSource, type OperatorDefinition } from '../../../engine/operator.ts';
import { type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import { runPipeline } from '../../../engine/runtime/run.ts';
import { pipeline, stage } from '../../../test/support/spec.ts';
import redisResource from '../../resources/redis/index.ts';
import fileSink from '../../sinks/file/index.ts';
import dedupe from './index.ts';
import { REDIS_URL } from '../../../test/support/redis-url.ts';

const [dataDir, output, count, store, prefix] = process.argv.slice(2) as [string, string, string, string, string];

/** The key of record `i`: even records bring a new key, odd ones repeat one from ~1000 records before. */
export function keyOf(i: number): number {
  if (i % 2 === 0) return i / 2;
  const earlier = Math.floor(i / 2) - 500;
  return earlier >= 0 ? earlier : -1 - i;
}

const source = defineSource({
  type: 'test_dedupe_source',
  stability: 'alpha',
  summary: 'records with repeated keys',
  schema: { $id: 'test_dedupe_source', type: 'object' } as const,
  examples: [],
  outputs: { default: 'any' },
  create(options: { count: number }, ctx) {
    let next = typeof ctx.restoredPosition === 'number' ? ctx.restoredPosition : 0;
    return {
      async run(out) {
        while (next < options.count && !out.stopping.aborted) {
          const records: EtlRecord[] = [];
          const end = Math.min(options.count, next + 250);
          for (let i = next; i < end; i++) {
            const record: EtlRecord = { i, n: keyOf(i) };
            record[ORIGIN] = { source: ctx.id, line: i + 1 };
            records.push(record);
          }
          next = end;
          await out.emit(records, end);
        }
      },
    };
  },
});

if (process.argv[1]?.endsWith('crash-run.ts')) {
  const spec = {
    ...pipeline(
      'dedupe-crash',
      dataDir,
      [
        stage({ id: 'src', def: source as OperatorDefinition, options: { count: Number(count) } }),
        stage({
          id: 'unique',
          def: dedupe as OperatorDefinition,
          inputs: ['src'],
          options: {
            ...dedupe.examples[1],
            fields: ['n'],
            store,
            ...(store === 'redis' ? { redis: 'cache', on_store_unavailable: 'wait' } : {}),
          },
        }),
        stage({
          id: 'out',
          def: fileSink,
          inputs: ['unique'],
          options: { path: output, format: 'jsonl', compression: 'none', append: false },
        }),
      ],
      { checkpointIntervalMs: 20 },
    ),
    resources:
      store === 'redis'
        ? [
            {
              name: 'cache',
              type: 'redis',
              definition: redisResource,
              options: { url: REDIS_URL, key_prefix: prefix, connect_timeout_seconds: 5 },
              position: { file: 'crash.yaml', line: 1, column: 1 },
            },
          ]
        : [],
  };
  const result = await runPipeline(spec);
  if (!result.ok) process.stderr.write(`${result.error?.message}\n`);
  process.exitCode = result.ok ? 0 : 1;
}
