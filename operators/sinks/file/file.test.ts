import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Sink, SinkWriteContext } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import { OPEN_RECORD_SCHEMA, type RecordSchema, withFields } from '../../../engine/record-schema.ts';
import { createFileSink, type FileSinkState, type FileSinkTuning } from './file.ts';
import { rolledSequence } from './naming.ts';
import type { FileSinkOptions } from './schema.ts';
import { recordingContext } from '../../../test/support/context.ts';

const dir = () => mkdtempSync(join(tmpdir(), 'etl-file-sink-'));
const options = (path: string, extra: Partial<FileSinkOptions> = {}): FileSinkOptions => ({
  path,
  format: 'jsonl',
  compression: 'none',
  append: false,
  ...extra,
});
const snapshot = { id: 1, positions: {} };

function collector(): SinkWriteContext & { rejected: Array<{ record: EtlRecord; reason: string }> } {
  const rejected: Array<{ record: EtlRecord; reason: string }> = [];
  return { rejected, deadLetter: (record, reason) => rejected.push({ record, reason }) };
}

async function openSink(
  opts: FileSinkOptions,
  state?: unknown,
  tuning?: FileSinkTuning,
  inputSchema?: RecordSchema,
): Promise<Sink> {
  const sink = createFileSink(opts, recordingContext(inputSchema ? { inputSchema } : {}), tuning);
  await sink.open?.();
  await sink.restore?.(state, undefined);
  return sink;
}

async function commit(sink: Sink): Promise<FileSinkState> {
  return (await sink.prepareCommit?.(snapshot, collector())) as FileSinkState;
}

/** The files a sink produced, oldest first: rolled files by sequence, then the current file. */
function outputs(folder: string, path: string): Buffer[] {
  const rolled = readdirSync(folder)
    .map((name) => ({ name, sequence: rolledSequence(path, name) }))
    .filter((f): f is { name: string; sequence: number } => f.sequence !== undefined)
    .sort((a, b) => a.sequence - b.sequence);
  return [...rolled.map((f) => readFileSync(join(folder, f.name))), readFileSync(path)];
}

afterEach(() => {
  vi.useRealTimers();
});

describe('file sink', () => {
  it('writes JSON lines, creating parent directories', async () => {
    const path = join(dir(), 'nested', 'deeper', 'out.jsonl');
    const sink = await openSink(options(path));
    await sink.write([{ a: 1 }, { b: 'x"y\n' }], collector());
    await sink.write([{ c: null, d: [1, { e: 'é' }] }], collector());
    await sink.close?.();
    expect(readFileSync(path, 'utf8')).toBe('{"a":1}\n{"b":"x\\"y\\n"}\n{"c":null,"d":[1,{"e":"é"}]}\n');
  });

  it('writes CSV: header once, quoting, nested values as JSON, columns from the first record', async () => {
    const path = join(dir(), 'out.csv');
    const sink = await openSink(options(path, { format: 'csv' }));
    await sink.write([{ ip: '::1', path: '/a,b', agent: 'say "hi"', up: { addr: '10.0.0.1:80' } }], collector());
    await sink.write([{ ip: '1.2.3.4', path: '/c\nd', agent: null, ok: true, other: 'not a column' }], collector());
    const state = await commit(sink);
    await sink.close?.();
    expect(readFileSync(path, 'utf8')).toBe(
      'ip,path,agent,up\n::1,"/a,b","say ""hi""","{""addr"":""10.0.0.1:80""}"\n1.2.3.4,"/c\nd",,\n',
    );
    expect(state.fields).toEqual(['ip', 'path', 'agent', 'up']);
  });

  it('reaches nested values with dotted fields, and prefers a key that contains the dot', async () => {
    const path = join(dir(), 'dotted.csv');
    const sink = await openSink(options(path, { format: 'csv', fields: ['ip', 'up.addr', 'ua.os'] }));
    await sink.write([{ ip: '::1', up: { addr: '10.0.0.1:80' }, 'ua.os': 'Linux', ua: { os: 'no' } }], collector());
    await sink.write([{ ip: '::2', up: 'flat', bytes: 10n }], collector());
    await sink.close?.();
    expect(readFileSync(path, 'utf8')).toBe('ip,up.addr,ua.os\n::1,10.0.0.1:80,Linux\n::2,,\n');
  });

  it('takes the columns from the input schema when it lists every field, in its order', async () => {
    const input: RecordSchema = {
      type: 'object',
      additionalProperties: false,
      required: ['ip'],
      properties: { ip: { type: 'string' }, status: { type: 'integer' }, agent: { type: ['string', 'null'] } },
    };
    const path = join(dir(), 'schema.csv');
    const sink = await openSink(options(path, { format: 'csv' }), undefined, undefined, input);
    // The first record lacks `status` and lists its keys in another order: the columns follow the schema.
    await sink.write(
      [
        { agent: 'curl', ip: '::1' },
        { ip: '::2', status: 200, agent: null },
      ],
      collector(),
    );
    const state = await commit(sink);
    await sink.close?.();
    expect(readFileSync(path, 'utf8')).toBe('ip,status,agent\n::1,,curl\n::2,200,\n');
    expect(state.fields).toEqual(['ip', 'status', 'agent']);

    // A field added upstream is a column of its own.
    const wider = join(dir(), 'wider.csv');
    const enriched = withFields(input, { geo_country: { type: ['string', 'null'] } });
    const second = await openSink(options(wider, { format: 'csv' }), undefined, undefined, enriched);
    await second.write([{ ip: '::1', status: 200, agent: null, geo_country: 'FR' }], collector());
    await second.close?.();
    expect(readFileSync(wider, 'utf8')).toBe('ip,status,agent,geo_country\n::1,200,,FR\n');

    // An open schema does not list every field: the first record's keys, as without a schema.
    const open = join(dir(), 'open.csv');
    const third = await openSink(options(open, { format: 'csv' }), undefined, undefined, OPEN_RECORD_SCHEMA);
    await third.write([{ b: 1, a: 2 }], collector());
    await third.close?.();
    expect(readFileSync(open, 'utf8')).toBe('b,a\n1,2\n');
  });

  it('keeps the columns of the first run when a rerun restores, even if records change shape', async () => {
    const path = join(dir(), 'out.csv');
    const first = await openSink(options(path, { format: 'csv' }));
    await first.write([{ a: 1, b: 2 }], collector());
    const state = await commit(first);
    await first.close?.();
    const again = await openSink(options(path, { format: 'csv' }), state);
    await again.write([{ b: 4, c: 5, a: 3 }], collector());
    await again.close?.();
    expect(readFileSync(path, 'utf8')).toBe('a,b\n1,2\n3,4\n');
  });

  it('dead-letters a record CSV cannot hold, and writes the rest of the batch', async () => {
    const path = join(dir(), 'out.csv');
    const sink = await openSink(options(path, { format: 'csv', fields: ['id', 'value'] }));
    const cyclic: Record<string, unknown> = { name: 'loop' };
    cyclic.self = cyclic;
    const ctx = collector();
    await sink.write([{ id: 1, value: 'ok' }, { id: 2, value: cyclic }, { id: 3, value: () => 0 }, { id: 4 }], ctx);
    await sink.close?.();
    expect(readFileSync(path, 'utf8')).toBe('id,value\n1,ok\n4,\n');
    expect(ctx.rejected.map((r) => r.record.id)).toEqual([2, 3]);
    expect(ctx.rejected[0]?.reason).toMatch(/^cannot write as CSV: .*circular/i);
    expect(ctx.rejected[1]?.reason).toBe('cannot write as CSV: a function has no text form');
  });

  it('dead-letters a record JSON cannot hold, and writes the rest of the batch', async () => {
    const path = join(dir(), 'out.jsonl');
    const sink = await openSink(options(path));
    const ctx = collector();
    await sink.write([{ ok: 1 }, { bad: 10n }, { ok: 2 }], ctx);
    await sink.close?.();
    expect(readFileSync(path, 'utf8')).toBe('{"ok":1}\n{"ok":2}\n');
    expect(ctx.rejected).toHaveLength(1);
    expect(ctx.rejected[0]?.reason).toMatch(/^cannot write as JSON: .*BigInt/);
  });

  it('writes gzip that reads back whole, also after a truncating restore', async () => {
    const path = join(dir(), 'out.jsonl.gz');
    const opts = options(path, { compression: 'gzip' });
    // Every batch reaches the disk at once, so the crashed run leaves bytes past the checkpoint.
    const sink = await openSink(opts, undefined, { writeThresholdBytes: 1 });
    await sink.write([{ n: 1 }], collector());
    await sink.write([{ n: 2 }], collector());
    const state = await commit(sink);
    await sink.write([{ n: 3 }], collector());
    expect(readFileSync(path).length).toBeGreaterThan(state.bytes);
    await sink.close?.();
    expect(gunzipSync(readFileSync(path)).toString()).toBe('{"n":1}\n{"n":2}\n{"n":3}\n');

    const again = await openSink(opts, state);
    await again.write([{ n: 4 }], collector());
    await again.close?.();
    expect(gunzipSync(readFileSync(path)).toString()).toBe('{"n":1}\n{"n":2}\n{"n":4}\n');
  });

  it('gathers small batches into one gzip member per checkpoint interval', async () => {
    const path = join(dir(), 'out.jsonl.gz');
    const sink = await openSink(options(path, { compression: 'gzip' }));
    for (let i = 0; i < 100; i++) await sink.write([{ n: i }], collector());
    await commit(sink);
    await sink.write([{ n: 100 }], collector());
    await sink.close?.();
    const bytes = readFileSync(path);
    // Each member starts with the gzip magic 1f 8b 08: the empty one that begins the file, then one per
    // checkpoint interval.
    const members = bytes.toString('latin1').split('\x1f\x8b\x08').length - 1;
    expect(members).toBe(3);
    expect(gunzipSync(bytes).toString().split('\n')).toHaveLength(102);
  });

  it('leaves no gzip file empty: one a roll by the last batch begins, or a checkpoint before any record', async () => {
    const folder = dir();
    const path = join(folder, 'out.jsonl.gz');
    const opts = options(path, { compression: 'gzip', rolling: { max_bytes: 1 } });
    // Every batch reaches the disk at once and fills the file: each write rolls, the last one included.
    const sink = await openSink(opts, undefined, { writeThresholdBytes: 1 });
    await sink.write([{ n: 1 }], collector());
    await sink.write([{ n: 2 }], collector());
    const state = await commit(sink);
    await sink.close?.();
    // gunzip rejects a file with no member at all ("unexpected end of file").
    expect(outputs(folder, path).map((file) => gunzipSync(file).toString())).toEqual(['{"n":1}\n', '{"n":2}\n', '']);
    expect(state.bytes).toBeGreaterThan(0);

    // A first run checkpointed before its first record, then killed: the rerun resumes the file as recorded.
    const other = join(folder, 'other.jsonl.gz');
    const first = await openSink(options(other, { compression: 'gzip' }));
    const empty = await commit(first);
    expect(gunzipSync(readFileSync(other)).toString()).toBe('');
    const again = await openSink(options(other, { compression: 'gzip' }), empty);
    await again.close?.();
    expect(gunzipSync(readFileSync(other)).toString()).toBe('');
    await first.close?.();
  });

  // A roll closes the file, renames it, opens a new one and writes its empty member. A SIGKILL may fall between
  // any two of these: each case makes the files such a crash leaves (from those of the whole roll).
  it.each([
    ['before the rename', (folder: string, path: string, rolled: string) => renameSync(join(folder, rolled), path)],
    ['after the rename, before the new file exists', (_folder: string, path: string) => rmSync(path)],
    ['after the new file is created, before its empty member', (_folder: string, path: string) => truncateSync(path)],
    ['after the whole roll', () => {}],
  ])('a gzip roll killed %s is undone by the rerun, which writes valid gzip once', async (_when, crash) => {
    const folder = dir();
    const path = join(folder, 'out.jsonl.gz');
    // Members of one record are 28 bytes: the second write fills the file and rolls it.
    const opts = options(path, { compression: 'gzip', rolling: { max_bytes: 50 } });
    const sink = await openSink(opts, undefined, { writeThresholdBytes: 1 });
    await sink.write([{ n: 1 }], collector());
    const state = await commit(sink);
    await sink.write([{ n: 2 }], collector()); // rolls as 000001: the roll the crash interrupts
    const rolled = readdirSync(folder).find((name) => rolledSequence(path, name) === 1) as string;
    crash(folder, path, rolled);

    const again = await openSink(opts, state, { writeThresholdBytes: 1 });
    await again.write([{ n: 2 }], collector());
    await again.write([{ n: 3 }], collector());
    await again.close?.();
    expect(outputs(folder, path).map((file) => gunzipSync(file).toString())).toEqual([
      '{"n":1}\n{"n":2}\n',
      '{"n":3}\n',
    ]);
    await sink.close?.();
  });

  it('writes the CSV header into a gzip file that holds only its empty member, also when appending', async () => {
    const path = join(dir(), 'out.csv.gz');
    const opts = options(path, { format: 'csv', compression: 'gzip', append: true });
    const empty = await openSink(opts);
    await commit(empty);
    await empty.close?.();
    const sink = await openSink(opts);
    await sink.write([{ a: 1 }], collector());
    await sink.close?.();
    expect(gunzipSync(readFileSync(path)).toString()).toBe('a\n1\n');
  });

  it('truncates to the checkpointed length on restore', async () => {
    const path = join(dir(), 'out.jsonl');
    const sink = await openSink(options(path), undefined, { writeThresholdBytes: 1 });
    await sink.write([{ n: 1 }], collector());
    const state = await commit(sink);
    await sink.write([{ n: 2 }], collector());
    // Crash: the object is dropped, what reached the disk stays.
    expect(readFileSync(path, 'utf8')).toBe('{"n":1}\n{"n":2}\n');
    const again = await openSink(options(path), state);
    expect(readFileSync(path, 'utf8')).toBe('{"n":1}\n');
    await again.close?.();
  });

  it.each(['none', 'gzip'] as const)(
    'takes the next snapshot’s writes while it commits a cut, and a restore keeps exactly the cut (%s)',
    async (compression) => {
      const folder = dir();
      const path = join(folder, 'out.jsonl');
      const read = () => {
        const bytes = readFileSync(path);
        return (compression === 'gzip' ? gunzipSync(bytes) : bytes).toString('utf8');
      };
      const sink = await openSink(options(path, { compression }), undefined, { writeThresholdBytes: 64 });
      await sink.write([{ n: 1 }, { n: 2 }], collector());
      sink.cut?.(snapshot);
      // Written after the cut, while the checkpoint commits: enough to reach the disk before it does.
      const late = sink.write(
        Array.from({ length: 20 }, (_, i) => ({ n: 100 + i })),
        collector(),
      );
      const [state] = await Promise.all([commit(sink), late]);
      await sink.close?.();
      expect(read()).toContain('{"n":119}');
      const reopened = await openSink(options(path, { compression }), state);
      await reopened.close?.();
      expect(read()).toBe('{"n":1}\n{"n":2}\n');
    },
  );

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

  it('does not repeat the CSV header when appending to a file that has one', async () => {
    const path = join(dir(), 'out.csv');
    writeFileSync(path, 'a\n1\n');
    const sink = await openSink(options(path, { format: 'csv', append: true }));
    await sink.write([{ a: 2 }], collector());
    await sink.close?.();
    expect(readFileSync(path, 'utf8')).toBe('a\n1\n2\n');
  });

  it('rolls by size and, on restore, undoes rolls made after the checkpoint', async () => {
    const folder = dir();
    const path = join(folder, 'out.csv');
    const opts = options(path, { format: 'csv', rolling: { max_bytes: 12 } });
    const sink = await openSink(opts);
    await sink.write([{ n: 1 }], collector()); // "n\n1\n": 4 bytes
    const state = await commit(sink);
    await sink.write([{ n: 2 }, { n: 3 }, { n: 4 }, { n: 5 }], collector()); // 12 bytes: rolls
    await sink.write([{ n: 6 }], collector());
    await commit(sink);
    await sink.close?.();
    const rolled = readdirSync(folder).filter((f) => f !== 'out.csv');
    expect(rolled).toHaveLength(1);
    expect(rolled[0]).toMatch(/^out-\d{8}T\d{6}-000001\.csv$/);
    expect(readFileSync(join(folder, rolled[0] as string), 'utf8')).toBe('n\n1\n2\n3\n4\n5\n');
    expect(readFileSync(path, 'utf8')).toBe('n\n6\n');

    const again = await openSink(opts, state);
    expect(readdirSync(folder)).toEqual(['out.csv']);
    await again.write([{ n: 7 }], collector());
    await again.close?.();
    expect(readFileSync(path, 'utf8')).toBe('n\n1\n7\n');
  });

  it('records rolled files in the state and keeps them on restore', async () => {
    const folder = dir();
    const path = join(folder, 'out.jsonl');
    const opts = options(path, { rolling: { max_bytes: 9 } });
    const sink = await openSink(opts);
    await sink.write([{ n: 1 }, { n: 2 }], collector()); // 16 bytes: rolls
    await sink.write([{ n: 3 }, { n: 4 }], collector()); // rolls again
    await sink.write([{ n: 5 }], collector()); // 8 bytes: stays
    const state = await commit(sink);
    await sink.close?.();
    expect(state.sequence).toBe(3);
    expect(state.rolled).toHaveLength(2);
    expect(readdirSync(folder).sort()).toEqual([...state.rolled, 'out.jsonl'].sort());
    const again = await openSink(opts, state);
    await again.close?.();
    expect(readdirSync(folder).sort()).toEqual([...state.rolled, 'out.jsonl'].sort());
  });

  it('rolls by interval', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: new Date('2026-11-28T10:00:00Z') });
    const folder = dir();
    const path = join(folder, 'out.jsonl');
    const sink = await openSink(options(path, { rolling: { interval_seconds: 60 } }));
    await sink.write([{ n: 1 }], collector());
    vi.setSystemTime(new Date('2026-11-28T10:01:00Z'));
    await sink.write([{ n: 2 }], collector());
    await sink.write([{ n: 3 }], collector());
    await sink.close?.();
    expect(readdirSync(folder).sort()).toEqual(['out-20261128T100100-000001.jsonl', 'out.jsonl']);
    expect(readFileSync(join(folder, 'out-20261128T100100-000001.jsonl'), 'utf8')).toBe('{"n":1}\n{"n":2}\n');
    expect(readFileSync(path, 'utf8')).toBe('{"n":3}\n');
  });

  it('on a run without a checkpoint, removes files rolled earlier, or keeps them and numbers after them', async () => {
    const folder = dir();
    const path = join(folder, 'out.jsonl');
    const earlier = 'out-20250101T000000-000007.jsonl';
    const unrelated = ['out-notes.jsonl', 'other-20250101T000000-000001.jsonl', 'out.jsonl.bak'];
    for (const name of [earlier, ...unrelated]) writeFileSync(join(folder, name), 'earlier run\n');

    const appending = options(path, { append: true, rolling: { max_bytes: 8 } });
    const sink = await openSink(appending);
    const state = await commit(sink);
    expect(state.sequence).toBe(8);
    await sink.write([{ n: 1 }], collector()); // rolls as 000008
    await sink.close?.();
    const again = await openSink(appending, state); // undoes the roll after the checkpoint
    await again.close?.();
    expect(readdirSync(folder).sort()).toEqual([earlier, 'out.jsonl', ...unrelated].sort());

    // Not before the run is under way: a run that stops before its first write or checkpoint changes nothing.
    writeFileSync(path, 'kept\n');
    const failed = await openSink(options(path, { rolling: { max_bytes: 8 } }));
    await failed.close?.();
    expect(readdirSync(folder).sort()).toEqual([earlier, 'out.jsonl', ...unrelated].sort());
    expect(readFileSync(path, 'utf8')).toBe('kept\n');

    const fresh = await openSink(options(path, { rolling: { max_bytes: 8 } }));
    await commit(fresh);
    await fresh.close?.();
    expect(readdirSync(folder).sort()).toEqual(['out.jsonl', ...unrelated].sort());
    expect(readFileSync(path, 'utf8')).toBe('');
  });

  it('refuses to resume when the file is shorter than its checkpoint', async () => {
    const path = join(dir(), 'out.jsonl');
    const sink = await openSink(options(path));
    await sink.write([{ n: 1 }], collector());
    const state = await commit(sink);
    await sink.close?.();
    writeFileSync(path, '');
    await expect(openSink(options(path), state)).rejects.toThrow(/truncated or replaced/);
  });

  it('starts anew when the checkpoint is for another path', async () => {
    const folder = dir();
    const sink = await openSink(options(join(folder, 'a.jsonl')));
    await sink.write([{ n: 1 }], collector());
    const state = await commit(sink);
    await sink.close?.();
    const other = await openSink(options(join(folder, 'b.jsonl')), state);
    await other.write([{ n: 2 }], collector());
    await other.close?.();
    expect(readFileSync(join(folder, 'a.jsonl'), 'utf8')).toBe('{"n":1}\n');
    expect(readFileSync(join(folder, 'b.jsonl'), 'utf8')).toBe('{"n":2}\n');
  });

  it('rejects a state it cannot read', async () => {
    await expect(openSink(options(join(dir(), 'x.jsonl')), { bytes: 'ten' })).rejects.toThrow(/unreadable/);
  });

  it('closes idempotently, also without open', async () => {
    const path = join(dir(), 'never.jsonl');
    const sink = createFileSink(options(path), recordingContext());
    await sink.close?.();
    await sink.close?.();
    expect(existsSync(path)).toBe(false);
    const used = await openSink(options(path));
    await used.write([{ a: 1 }], collector());
    await used.close?.();
    await used.close?.();
    expect(readFileSync(path, 'utf8')).toBe('{"a":1}\n');
  });

  it('crash, restore and replay give the same files as an uninterrupted run (property)', async () => {
    const record = fc.record({ id: fc.nat(), text: fc.string({ unit: 'grapheme' }) });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(record, { maxLength: 5 }), { minLength: 1, maxLength: 8 }),
        fc.nat(),
        fc.nat(),
        fc.constantFrom<FileSinkOptions['compression']>('none', 'gzip'),
        fc.constantFrom<FileSinkOptions['format']>('jsonl', 'csv'),
        fc.option(fc.integer({ min: 20, max: 200 }), { nil: undefined }),
        fc.constantFrom(1, 64, 1 << 20),
        fc.boolean(),
        async (input, cp, crash, compression, format, maxBytes, writeThresholdBytes, checkpointed) => {
          // Without a checkpoint the crashed run restarts from nothing, as the runtime does.
          const at = checkpointed ? cp % (input.length + 1) : 0;
          const crashAt = at + (crash % (input.length - at + 1));
          const extra = { compression, format, ...(maxBytes ? { rolling: { max_bytes: maxBytes } } : {}) };
          const tuning = { writeThresholdBytes };
          // Time moves a second per batch, so files rolled in the two runs get different names.
          vi.useFakeTimers({ toFake: ['Date'], now: 0 });
          const tick = () => vi.setSystemTime(Date.now() + 1000);

          // The uninterrupted run, checkpointing at the same point.
          const refFolder = dir();
          const refPath = join(refFolder, 'out.log');
          const ref = await openSink(options(refPath, extra), undefined, tuning);
          for (let i = 0; i < input.length; i++) {
            if (i === at && checkpointed) await commit(ref);
            tick();
            await ref.write(input[i] ?? [], collector());
          }
          await ref.close?.();

          const folder = dir();
          const path = join(folder, 'out.log');
          const first = await openSink(options(path, extra), undefined, tuning);
          let state: FileSinkState | undefined;
          for (let i = 0; i < crashAt; i++) {
            if (i === at && checkpointed) state = await commit(first);
            tick();
            await first.write(input[i] ?? [], collector());
          }
          if (at === crashAt && checkpointed) state = await commit(first);
          // Crash: `first` is dropped; only what it already wrote is on disk.
          const second = await openSink(options(path, extra), state, tuning);
          for (let i = at; i < input.length; i++) {
            tick();
            await second.write(input[i] ?? [], collector());
          }
          await second.close?.();

          expect(outputs(folder, path)).toEqual(outputs(refFolder, refPath));
          if (compression === 'gzip') {
            for (const file of outputs(folder, path)) gunzipSync(file);
          }
          // Only now release the crashed run's handle (closing writes what it still held).
          await first.close?.();
        },
      ),
      { numRuns: 150 },
    );
  });
});

// A real full disk needs a file system of our own: a small tmpfs, which only root can mount (as on CI).
describe.runIf(process.getuid?.() === 0)('file sink on a full disk', () => {
  it('keeps every acknowledged record, and a retried write adds its batch once', async () => {
    const mount = dir();
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mount]);
    try {
      const path = join(mount, 'out.jsonl');
      const sink = await openSink(options(path), undefined, { writeThresholdBytes: 1024 });
      const batch = (from: number) => Array.from({ length: 20 }, (_, i) => ({ n: from + i, pad: 'x'.repeat(40) }));
      await sink.write(batch(0), collector());
      // Fill the disk: the next write that reaches it fails.
      let filler = 0;
      try {
        for (;;) writeFileSync(join(mount, `filler-${filler++}`), Buffer.alloc(4096));
      } catch (error) {
        expect((error as NodeJS.ErrnoException).code).toBe('ENOSPC');
      }
      // Batches that fit what space is left are written; the first that does not is refused whole.
      let failed = 0;
      for (let from = 20; from < 2000 && failed === 0; from += 20) {
        try {
          await sink.write(batch(from), collector());
        } catch (error) {
          expect((error as NodeJS.ErrnoException).code).toBe('ENOSPC');
          failed = from;
        }
      }
      expect(failed).toBeGreaterThan(0);
      for (let i = 0; i < filler; i++) rmSync(join(mount, `filler-${i}`), { force: true });
      // The runtime retries the failed batch with the same records.
      await sink.write(batch(failed), collector());
      await commit(sink);
      await sink.close?.();
      const seen = readFileSync(path, 'utf8')
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { n: number }).n);
      expect(seen).toEqual(Array.from({ length: failed + 20 }, (_, i) => i));
    } finally {
      // Lazily: a handle a failed assertion left open must not hide the failure.
      execFileSync('umount', ['-l', mount]);
    }
  });
});
