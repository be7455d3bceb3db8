/**
 * The dedupe transform with the memory store, driven through its contract: duplicates by key fields or by
 * the whole record, the window on processing and on event time, a full store under each policy, and the
 * property that a first occurrence is never dropped, however the records are cut into batches.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { EtlRecord } from '../../../engine/record.ts';
import { recordingContext } from '../../../test/support/context.ts';
import { createDedupe } from './dedupe.ts';
import definition from './index.ts';
import type { DedupeOptions } from './schema.ts';

const options = (extra: Partial<DedupeOptions> = {}): DedupeOptions => ({
  ...(definition.examples[1] as DedupeOptions),
  ...extra,
});

async function make(extra: Partial<DedupeOptions> = {}) {
  const ctx = recordingContext({ id: 'dd' });
  const transform = createDedupe(options(extra), ctx);
  await transform.open?.();
  await transform.restore?.(undefined, undefined);
  return { ctx, transform };
}

describe('dedupe (memory store)', () => {
  it('drops later occurrences of the same key fields and counts them', async () => {
    const { ctx, transform } = await make({ fields: ['ip', 'path'] });
    const out = await transform.process([
      { ip: '1.1.1.1', path: '/a', n: 1 },
      { ip: '1.1.1.1', path: '/a', n: 2 },
      { ip: '1.1.1.1', path: '/b', n: 3 },
      { ip: '2.2.2.2', path: '/a', n: 4 },
    ]);
    expect(out.default?.map((r) => r.n)).toEqual([1, 3, 4]);
    const next = await transform.process([{ path: '/b', ip: '1.1.1.1', n: 5 }, { ip: '3.3.3.3' }, { ip: '3.3.3.3' }]);
    expect(next.default?.map((r) => r.n ?? r.ip)).toEqual(['3.3.3.3']);
    expect(ctx.values.get('etl_dedupe_dropped_total')).toBe(3);
    expect(transform.summarize?.()).toEqual({ lines: ['3 duplicates dropped of 7 records (42.86%)'] });
  });

  it('keys on the whole record when no fields are given, whatever the order of its fields', async () => {
    const { transform } = await make();
    const out = await transform.process([
      { a: 1, b: 'x' },
      { b: 'x', a: 1 },
      { a: 1, b: 'x', c: null },
      { a: '1', b: 'x' },
      { a: 1, b: 'x', d: { e: 1, f: 2 } },
      { d: { f: 2, e: 1 }, a: 1, b: 'x' },
    ]);
    expect(out.default).toEqual([
      { a: 1, b: 'x' },
      { a: 1, b: 'x', c: null },
      { a: '1', b: 'x' },
      { a: 1, b: 'x', d: { e: 1, f: 2 } },
    ]);
  });

  it('forgets a key once its window has passed (processing time, on tick)', async () => {
    const { ctx, transform } = await make({ fields: ['id'], window_seconds: 60 });
    expect((await transform.process([{ id: 1 }])).default).toHaveLength(1);
    await transform.tick?.(Date.now() + 30_000);
    expect((await transform.process([{ id: 1 }])).default).toHaveLength(0);
    expect(ctx.values.get('etl_dedupe_keys')).toBe(1);
    await transform.tick?.(Date.now() + 61_000);
    expect(ctx.values.get('etl_dedupe_keys')).toBe(0);
    expect((await transform.process([{ id: 1 }])).default).toHaveLength(1);
  });

  it('on event time, drops within the window around the first occurrence, dead-letters records without a time', async () => {
    const { transform } = await make({
      fields: ['id'],
      time: 'event',
      on_store_unavailable: 'pass',
      window_seconds: 10,
    });
    const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
    const out = await transform.process([
      { id: 1, timestamp: t(0), n: 'first' },
      { id: 1, timestamp: t(9), n: 'dup' },
      { id: 1, timestamp: t(10), n: 'next window' },
      { id: 1, timestamp: t(5), n: 'late dup' },
      { id: 2, n: 'no time' },
      { id: 2, timestamp: 'yesterday', n: 'bad time' },
    ]);
    expect(out.default?.map((r) => r.n)).toEqual(['first', 'next window']);
    expect(out.dead_letter?.map((r) => [r.reason, JSON.parse(String(r.raw)).n])).toEqual([
      ['no event time in `timestamp` (time: event)', 'no time'],
      ['no event time in `timestamp` (time: event)', 'bad time'],
    ]);
  });

  it('when full, passes unchecked (pass), fails the batch without changing state (fail), or waits (wait)', async () => {
    const pass = await make({ fields: ['id'], max_keys: 2, on_store_unavailable: 'pass' });
    const passed = await pass.transform.process([{ id: 1 }, { id: 2 }, { id: 3 }, { id: 3 }, { id: 1 }]);
    expect(passed.default).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }, { id: 3 }]);
    expect(pass.ctx.values.get('etl_dedupe_unchecked_total')).toBe(2);
    expect(pass.ctx.values.get('etl_dedupe_dropped_total')).toBe(1);
    await pass.ctx.logged('the memory store is full (max_keys 2); records pass unchecked');
    expect(pass.transform.summarize?.()?.lines).toEqual([
      '1 duplicates dropped of 5 records (20.00%)',
      '2 passed unchecked (the store was full or down; on_store_unavailable: pass)',
    ]);

    const fail = await make({ fields: ['id'], max_keys: 2, on_store_unavailable: 'fail' });
    await fail.transform.process([{ id: 1 }]);
    await expect(fail.transform.process([{ id: 2 }, { id: 3 }])).rejects.toThrow('the memory store is full');
    // Nothing of the failed batch was remembered (nor counted): a retry sees the same store.
    await expect(fail.transform.process([{ id: 2 }, { id: 3 }])).rejects.toThrow('the memory store is full');
    expect((await fail.transform.process([{ id: 2 }, { id: 1 }])).default).toEqual([{ id: 2 }]);
    expect(fail.transform.summarize?.()?.lines).toEqual(['1 duplicates dropped of 3 records (33.33%)']);

    const wait = await make({ fields: ['id'], max_keys: 2, on_store_unavailable: 'wait', window_seconds: 0.05 });
    await wait.transform.process([{ id: 1 }, { id: 2 }]);
    const started = Date.now();
    expect((await wait.transform.process([{ id: 3 }, { id: 1 }])).default).toEqual([{ id: 3 }, { id: 1 }]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(40);
    await wait.ctx.logged('waiting for keys to expire');
  });

  it('never drops a first occurrence, and drops every later one within the window, however batched', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ a: fc.integer({ min: 0, max: 6 }), b: fc.constantFrom('x', 'y', null) }), {
          maxLength: 80,
        }),
        fc.array(fc.integer({ min: 1, max: 10 }), { minLength: 1, maxLength: 10 }),
        fc.boolean(),
        async (rows, sizes, whole) => {
          const records: EtlRecord[] = rows.map((row) => ({ ...row }));
          const { transform } = await make(whole ? {} : { fields: ['a', 'b'] });
          const keyOf = (r: EtlRecord) => JSON.stringify([r.a, r.b]);
          const expected: EtlRecord[] = [];
          const firsts = new Set<string>();
          for (const r of records) {
            if (!firsts.has(keyOf(r))) expected.push(r);
            firsts.add(keyOf(r));
          }
          const out: EtlRecord[] = [];
          for (let at = 0, k = 0; at < records.length; k++) {
            const size = sizes[k % sizes.length] as number;
            out.push(...((await transform.process(records.slice(at, at + size))).default ?? []));
            at += size;
          }
          // The very objects that came first, in their order.
          expect(out.length).toBe(expected.length);
          for (const [i, r] of out.entries()) expect(r).toBe(expected[i]);
        },
      ),
      { numRuns: 200 },
    );
  });
});
