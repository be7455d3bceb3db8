/**
 * Stateless test transforms for stages on worker threads. Workers load a stage's definition from the registry or
 * from the modules a run names (`RunOptions.operatorModules`): this one, as `WORKER_OPERATORS`.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import { defineTransform } from '../../engine/operator.ts';
import { deadLetter, type EtlRecord } from '../../engine/record.ts';

export const WORKER_OPERATORS = import.meta.url;

export interface TagOptions {
  /** The field added to every record passed on: the stage's id and the record's position in its batch. */
  field: string;
  /** Records whose number is a multiple of this go to dead_letter (0: none). */
  reject_every?: number;
  /** Records with an odd number leave on `odd` too. */
  split?: boolean;
  /** `process` throws on a batch holding a record of this id (the whole batch fails). */
  throw_on?: string;
}

const numberOf = (record: EtlRecord): number => Number(/(\d+)$/.exec(String(record.id))?.[1] ?? -1);

/** Adds a field, dead-letters some records, sends odd ones on a second port: output that depends on the batch only. */
export const statelessTag = defineTransform({
  type: 'test_tag',
  stability: 'alpha',
  summary: 'adds a field; dead-letters every n-th record; sends odd records on `odd` too',
  schema: { $id: 'test_tag', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  outputs: { default: 'any', odd: 'any' },
  stateless: true,
  create(options: TagOptions, ctx) {
    return {
      process(records: EtlRecord[]) {
        if (options.throw_on !== undefined && records.some((r) => r.id === options.throw_on)) {
          throw new Error(`a batch holding ${options.throw_on}`);
        }
        const out: EtlRecord[] = [];
        const odd: EtlRecord[] = [];
        const rejected: EtlRecord[] = [];
        records.forEach((record, i) => {
          const n = numberOf(record);
          if (options.reject_every && n % options.reject_every === 0) {
            rejected.push(deadLetter(record, ctx.id, `${n} is a multiple of ${options.reject_every}`, 0));
            return;
          }
          const tagged = { ...record, [options.field]: `${ctx.id}:${i}`, nested: { n, at: [i] } };
          out.push(tagged);
          if (options.split && n % 2 === 1) odd.push(tagged);
        });
        return { default: out, odd, dead_letter: rejected };
      },
    };
  },
});

export interface CrashOptions {
  /** The worker running a batch with this record dies, once: when `marker` does not exist yet (it then makes it). */
  crash_at: string;
  marker: string;
}

/** Kills the worker thread it runs in at a given record, once; passes everything on. */
export const crashOnce = defineTransform({
  type: 'test_crash_once',
  stability: 'alpha',
  summary: 'ends its worker thread at a given record, once',
  schema: { $id: 'test_crash_once', type: 'object' } as const,
  examples: [],
  accepts: ['any'],
  outputs: { default: 'any' },
  stateless: true,
  create(options: CrashOptions) {
    return {
      process(records: EtlRecord[]) {
        if (!isMainThread && records.some((r) => r.id === options.crash_at) && !existsSync(options.marker)) {
          writeFileSync(options.marker, 'crashed');
          process.exit(3);
        }
        return { default: records };
      },
    };
  },
});
