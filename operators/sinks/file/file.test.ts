import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SinkWriteContext } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import { testContext } from '../../../test/support/context.ts';
import { createFileSink } from './file.ts';
import type { FileSinkOptions } from './schema.ts';

const dir = () => mkdtempSync(join(tmpdir(), 'etl-file-sink-'));
const options = (path: string, extra: Partial<FileSinkOptions> = {}): FileSinkOptions => ({
  path,
  format: 'jsonl',
  compression: 'none',
  append: false,
  ...extra,
});

function collector(): SinkWriteContext & { rejected: Array<{ record: EtlRecord; reason: string }> } {
  const rejected: Array<{ record: EtlRecord; reason: string }> = [];
  return { rejected, deadLetter: (record, reason) => rejected.push({ record, reason }) };
}

async function openSink(opts: FileSinkOptions, state?: unknown) {
  const sink = createFileSink(opts, testContext());
  await sink.open?.();
  await sink.restore?.(state, undefined);
  return sink;
}

describe('file sink', () => {
  it('writes JSON lines', async () => {
    const path = join(dir(), 'nested', 'out.jsonl');
    const sink = await openSink(options(path));
    await sink.write([{ a: 1 }, { b: 'x"y' }], collector());
    await sink.write([{ c: null }], collector());
    await sink.close?.();
    expect(readFileSync(path, 'utf8')).toBe('{"a":1}\n{"b":"x\\"y"}\n{"c":null}\n');
  });

  it('writes CSV with a header once, quoting, nested fields, and columns from the first record', async () => {
    const path = join(dir(), 'out.csv');
    const sink = await openSink(options(path, { format: 'csv' }));
    await sink.write([{ ip: '::1', path: '/a,b', agent: 'say "hi"', up: { addr: '10.0.0.1:80' } }], collector());
    await sink.write([{ ip: '1.2.3.4', path: '/c', agent: null, up: null, other: 'ignored' }], collector());
    const state = await sink.prepareCommit?.({ id: 1, positions: {} });
    await sink.close?.();
    expect(readFileSync(path, 'utf8')).toBe(
      'ip,path,agent,up\n::1,"/a,b","say ""hi""","{""addr"":""10.0.0.1:80""}"\n1.2.3.4,/c,,\n',
    );
    expect(state).toMatchObject({ fields: ['ip', 'path', 'agent', 'up'] });

    const dotted = join(dir(), 'dotted.csv');
    const sink2 = await openSink(options(dotted, { format: 'csv', fields: ['ip', 'up.addr'] }));
    await sink2.write([{ ip: '::1', up: { addr: '10.0.0.1:80' } }], collector());
    await sink2.close?.();
    expect(readFileSync(dotted, 'utf8')).toBe('ip,up.addr\n::1,10.0.0.1:80\n');
  });

  it('dead-letters a record it cannot serialise, and writes the rest of the batch', async () => {
    const path = join(dir(), 'out.jsonl');
    const sink = await openSink(options(path));
    const ctx = collector();
    await sink.write([{ ok: 1 }, { bad: 10n }, { ok: 2 }], ctx);
    await sink.close?.();
    expect(readFileSync(path, 'utf8')).toBe('{"ok":1}\n{"ok":2}\n');
    expect(ctx.rejected).toHaveLength(1);
    expect(ctx.rejected[0]?.reason).toMatch(/cannot write as JSON.*BigInt/);
  });

  it('writes gzip that reads back whole, also after a truncating restore', async () => {
    const path = join(dir(), 'out.jsonl.gz');
    const opts = options(path, { compression: 'gzip' });
    const sink = await openSink(opts);
    await sink.write([{ n: 1 }], collector());
    await sink.write([{ n: 2 }], collector());
    const state = await sink.prepareCommit?.({ id: 1, positions: {} });
    await sink.write([{ n: 3 }], collector());
    await sink.close?.();
    expect(gunzipSync(readFileSync(path)).toString()).toBe('{"n":1}\n{"n":2}\n{"n":3}\n');

    const again = await openSink(opts, state);
    await again.write([{ n: 4 }], collector());
    await again.close?.();
    expect(gunzipSync(readFileSync(path)).toString()).toBe('{"n":1}\n{"n":2}\n{"n":4}\n');
  });

  it('starts anew on a first run, or appends when asked', async () => {
    const path = join(dir(), 'out.jsonl');
    writeFileSync(path, 'old\n');
    const fresh = await openSink(options(path));
    await fresh.write([{ a: 1 }], collector());
    await fresh.close?.();
    expect(readFileSync(path, 'utf8')).toBe('{"a":1}\n');
    const appending = await openSink(options(path, { append: true }));
    await appending.write([{ a: 2 }], collector());
    await appending.close?.();
    expect(readFileSync(path, 'utf8')).toBe('{"a":1}\n{"a":2}\n');
  });

  it('rolls by size and, on restore, undoes rolls made after the checkpoint', async () => {
    const folder = dir();
    const path = join(folder, 'out.jsonl');
    const opts = options(path, { rolling: { max_bytes: 20 } });
    const sink = await openSink(opts);
    await sink.write([{ n: 1 }], collector()); // 8 bytes
    const state = await sink.prepareCommit?.({ id: 1, positions: {} });
    await sink.write([{ n: 2 }, { n: 3 }], collector()); // 24 bytes: rolls
    await sink.write([{ n: 4 }], collector());
    await sink.close?.();
    const rolled = readdirSync(folder).filter((f) => f !== 'out.jsonl');
    expect(rolled).toHaveLength(1);
    expect(rolled[0]).toMatch(/^out-\d{8}T\d{6}-000001\.jsonl$/);
    expect(readFileSync(join(folder, rolled[0] as string), 'utf8')).toBe('{"n":1}\n{"n":2}\n{"n":3}\n');

    const again = await openSink(opts, state);
    await again.write([{ n: 5 }], collector());
    await again.close?.();
    expect(readdirSync(folder)).toEqual(['out.jsonl']);
    expect(readFileSync(path, 'utf8')).toBe('{"n":1}\n{"n":5}\n');
  });

  it('refuses to resume when the file is shorter than its checkpoint', async () => {
    const path = join(dir(), 'out.jsonl');
    const sink = await openSink(options(path));
    await sink.write([{ n: 1 }], collector());
    const state = await sink.prepareCommit?.({ id: 1, positions: {} });
    await sink.close?.();
    writeFileSync(path, '');
    await expect(openSink(options(path), state)).rejects.toThrow(/truncated or replaced/);
  });

  it('closes idempotently, also without open', async () => {
    const path = join(dir(), 'never.jsonl');
    const sink = createFileSink(options(path), testContext());
    await sink.close?.();
    await sink.close?.();
    expect(existsSync(path)).toBe(false);
  });

  it('crash then restore then replay gives the same file as an uninterrupted run (property)', async () => {
    const batches = fc.array(fc.array(fc.record({ id: fc.nat(), text: fc.string() }), { maxLength: 5 }), {
      minLength: 1,
      maxLength: 8,
    });
    await fc.assert(
      fc.asyncProperty(
        batches,
        fc.nat(),
        fc.nat(),
        fc.constantFrom('none' as const, 'gzip' as const),
        async (input, cp, crash, compression) => {
          const folder = dir();
          const read = (p: string) => {
            const bytes = readFileSync(p);
            // No batch had records: the file is empty, which is no gzip stream at all.
            return compression === 'gzip' && bytes.length > 0 ? gunzipSync(bytes).toString() : bytes.toString();
          };
          const reference = join(folder, 'ref.out');
          const ref = await openSink(options(reference, { compression }));
          for (const b of input) await ref.write(b, collector());
          await ref.close?.();

          const path = join(folder, 'crash.out');
          const checkpointAt = cp % (input.length + 1);
          const crashAt = checkpointAt + (crash % (input.length - checkpointAt + 1));
          const first = await openSink(options(path, { compression }));
          let state: unknown;
          for (let i = 0; i < crashAt; i++) {
            if (i === checkpointAt) state = await first.prepareCommit?.({ id: 1, positions: {} });
            await first.write(input[i] ?? [], collector());
          }
          if (checkpointAt === crashAt) state = await first.prepareCommit?.({ id: 1, positions: {} });
          // Crash: the handle is dropped without flush or close beyond what the OS already has.
          const second = await openSink(options(path, { compression }), state);
          for (let i = checkpointAt; i < input.length; i++) await second.write(input[i] ?? [], collector());
          await second.close?.();
          await first.close?.();
          expect(read(path)).toBe(read(reference));
        },
      ),
      { numRuns: 60 },
    );
  });
});
