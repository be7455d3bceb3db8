/**
 * Oracle of COPY binary against COPY text: the same random records (unicode, U+0000 and backslashes as
 * nul.ts stores them, extreme and refused numbers, IPv6, time zones, microseconds, nested JSON, NULLs)
 * go through two postgres sinks on the real server, one per format, into two tables; every row as the
 * server prints it, and every dead letter with its reason, must be the same.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sink } from '../../engine/operator.ts';
import { type EtlRecord, ORIGIN } from '../../engine/record.ts';
import type { RecordSchema } from '../../engine/record-schema.ts';
import { accessRecord, DeadLetters, serverQuery, Target, testContext } from './helpers.ts';

const RECORDS: RecordSchema = {
  type: 'object',
  required: ['seq'],
  properties: {
    seq: { type: 'integer', minimum: 0, maximum: 1_000_000_000 },
    s: { type: ['string', 'null'] },
    small: { type: 'integer', minimum: -32768, maximum: 32767 },
    medium: { type: 'integer', minimum: -2147483648, maximum: 2147483647 },
    big: { type: 'integer' },
    ratio: { type: 'number' },
    amount: { type: 'number', multipleOf: 0.01 },
    flag: { type: 'boolean' },
    at: { type: 'string', format: 'date-time' },
    ip: { type: 'string', format: 'ip' },
    doc: { type: 'object' },
  },
};

/** Text with what COPY text escapes, what nul.ts stores, non-BMP and lone surrogates mixed in. */
const text = fc
  .array(
    fc.oneof(
      fc.string({ unit: 'binary', maxLength: 6 }),
      fc.constantFrom('\0', '\\', '\\x00', '\\x5c', '\\\\x00', '\t', '\n', '\r', '\ud800', 'é', '😀', '"', 'N'),
    ),
    { maxLength: 6 },
  )
  .map((parts) => parts.join(''));

/** Mostly values a column takes, now and then one it refuses (each record has many fields). */
const mostly = <T, U>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<U>) =>
  fc.oneof({ arbitrary: good, weight: 30 }, { arbitrary: bad, weight: 1 });

const pad = (n: number, width: number) => String(n).padStart(width, '0');

/** RFC 3339 text (and the variants parseTimestamp takes), Date objects and epoch milliseconds. */
const timestamp = mostly(
  fc.oneof(
    fc
      .record({
        year: fc.integer({ min: 1, max: 9999 }),
        month: fc.integer({ min: 1, max: 12 }),
        day: fc.integer({ min: 1, max: 28 }),
        hour: fc.integer({ min: 0, max: 23 }),
        minute: fc.integer({ min: 0, max: 59 }),
        second: fc.integer({ min: 0, max: 59 }),
        fraction: fc.stringMatching(/^(\.\d{1,9})?$/),
        separator: fc.constantFrom('T', ' '),
        zone: fc.constantFrom('Z', '', '+00:00', '+05:30', '-08:00', '+14:00', '-0330', '+01'),
      })
      .map(
        (t) =>
          `${pad(t.year, 4)}-${pad(t.month, 2)}-${pad(t.day, 2)}${t.separator}${pad(t.hour, 2)}:${pad(t.minute, 2)}:` +
          `${pad(t.second, 2)}${t.fraction}${t.zone}`,
      ),
    fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }),
    fc.double({ min: -62135596800000, max: 253402300799999, noNaN: true }),
    fc.constantFrom('2024-05-01T12:00:00.9999995Z', '2024-05-01T23:59:59.9999999Z', '2024-05-01T12:00:00.0000005Z'),
  ),
  fc.constantFrom('2024-02-30T00:00:00Z', 'yesterday', 1e16),
);

const number = mostly(
  fc.oneof(
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.constantFrom(0, -0, 1e21, -1e-7, 5e-324, Number.MAX_VALUE, -Number.MAX_VALUE, 0.1, 123456789.98765433),
    fc.integer(),
  ),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, '1'),
);

const record = (seq: number) =>
  fc.record(
    {
      seq: fc.constant(seq),
      s: fc.option(mostly(fc.oneof(text, fc.integer(), fc.boolean()), fc.constant({})), { nil: null }),
      small: mostly(fc.integer({ min: -32768, max: 32767 }), fc.constantFrom(32768, -32769, 1.5, '7')),
      medium: mostly(fc.integer(), fc.constantFrom(2147483648, 0.5)),
      big: mostly(
        fc.oneof(fc.maxSafeInteger(), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })),
        fc.constantFrom(2n ** 63n, 2 ** 60),
      ),
      ratio: number,
      amount: number,
      flag: mostly(fc.boolean(), fc.constant('true')),
      at: timestamp,
      ip: mostly(
        fc.oneof(fc.ipV4(), fc.ipV6(), fc.constantFrom('::ffff:1.2.3.4', '::', '0.0.0.0', '255.255.255.255')),
        fc.oneof(fc.ipV4Extended(), fc.constant('fe80::1%eth0')),
      ),
      doc: fc.oneof(
        fc.jsonValue({ maxDepth: 3 }),
        fc.dictionary(text, fc.oneof(text, fc.double({ noNaN: true, noDefaultInfinity: true }))),
      ),
      note: text,
    },
    { requiredKeys: ['seq'] },
  );

/** Every row as the database prints it (each column's text output), by seq. */
async function rowsOf(target: Target, table: string, from: number, to: number): Promise<string[]> {
  const rows = await target.query(
    `SELECT t::text AS row FROM "${target.schema}"."${table}" t WHERE seq >= $1 AND seq < $2 ORDER BY seq`,
    [from, to],
  );
  return rows.map((r) => r.row as string);
}

describe('copy_format: binary', () => {
  it('sends text to a table with a column of another type than the layout, and stores every row', async () => {
    const target = await Target.create('server');
    try {
      const now = () => Date.parse('2024-05-01T12:00:00Z');
      const first = target.sink(target.options(), testContext(target.dataDir), now);
      await first.open?.();
      await first.commit?.({ id: 1, positions: {} });
      await first.close?.();
      // status is smallint in the table; an int4 in a binary COPY would be refused for it.
      const ctx = testContext(target.dataDir);
      const second = target.sink(target.options({ copy_format: 'binary', columns: { status: 'integer' } }), ctx, now);
      await second.open?.();
      const dl = new DeadLetters();
      await second.write(
        Array.from({ length: 20 }, (_, i) => accessRecord(i, '2024-05-01T11:00:00Z')),
        dl,
      );
      await second.commit?.({ id: 2, positions: {} });
      await second.close?.();
      expect(dl.records).toEqual([]);
      expect(ctx.logs.some((l) => l.message.includes('(status): COPY in text format'))).toBe(true);
      const [row] = await serverQuery(`SELECT count(*)::int AS n FROM "${target.schema}".access_logs`);
      expect(row?.n).toBe(20);
    } finally {
      await target.dispose();
    }
  });
});

describe('COPY binary rows the server refuses (server)', () => {
  it('dead-letters them decoded from their binary row, with their origin, and keeps the rest', async () => {
    const target = await Target.create('server');
    try {
      const now = () => Date.parse('2024-05-01T12:00:00Z');
      const sink = target.sink(target.options({ copy_format: 'binary' }), testContext(target.dataDir), now);
      await sink.open?.();
      // A rule the encoder cannot know about: a user's CHECK constraint.
      await serverQuery(`ALTER TABLE "${target.schema}".access_logs ADD CONSTRAINT no_teapots CHECK (status <> 203)`);
      const records = Array.from(
        { length: 50 },
        (_, i): EtlRecord => ({
          ...accessRecord(i, '2024-05-01T13:00:00.123456+02:00', { extra: { note: 'a\0b' } }),
          [ORIGIN]: { source: 'logs', line: i + 1 },
        }),
      );
      const dl = new DeadLetters();
      await sink.write(records, dl);
      await sink.prepareCommit?.({ id: 1, positions: {} }, dl);
      await sink.commit?.({ id: 1, positions: {} });
      await sink.close?.();
      const refused = records.filter((r) => r.status === 203);
      // As stored: NULLs left out, the instant in UTC (the text it came as is not sent), the origin kept.
      const asStored = (r: EtlRecord) => ({
        ...Object.fromEntries(Object.entries(r).filter(([k, v]) => v !== null && k !== 'extra')),
        note: 'a\0b',
        timestamp: '2024-05-01T11:00:00.123456Z',
        [ORIGIN]: r[ORIGIN],
      });
      expect(dl.records.map((d) => d.record)).toEqual(refused.map(asStored));
      expect(dl.records[0]?.reason).toMatch(/refused by PostgreSQL: .*no_teapots/);
      const [row] = await serverQuery(`SELECT count(*)::int AS n FROM "${target.schema}".access_logs`);
      expect(row?.n).toBe(40);
    } finally {
      await target.dispose();
    }
  });
});

// The embedded database (PGlite) gets binary by default (`copy_format: auto`), in slices framed one by one.
describe.each(['server', 'embedded'] as const)('COPY binary against COPY text (%s)', (mode) => {
  let target: Target;
  const sinks: Record<'text' | 'binary', Sink> = {} as Record<'text' | 'binary', Sink>;
  let snapshot = 0;
  let nextSeq = 0;
  let stored = 0;
  let total = 0;

  beforeAll(async () => {
    target = await Target.create(mode);
    for (const format of ['text', 'binary'] as const) {
      const options = target.options({ table: `oracle_${format}`, copy_format: format, partition: 'none' });
      const ctx = testContext(target.dataDir, `store_${format}`, 'oracle', RECORDS);
      sinks[format] = target.sink(options, ctx);
      await sinks[format].open?.();
    }
  });
  afterAll(async () => {
    for (const sink of Object.values(sinks)) await sink.close?.();
    await target.dispose();
  });

  it('stores the same rows and dead-letters the same records for the same reasons', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 40 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => record(i)))),
        async (generated) => {
          const from = nextSeq;
          const records = generated.map((r) => ({ ...r, seq: from + r.seq }) as EtlRecord);
          nextSeq += records.length;
          const letters = { text: new DeadLetters(), binary: new DeadLetters() };
          snapshot++;
          for (const format of ['text', 'binary'] as const) {
            await sinks[format].write(
              records.map((r) => ({ ...r })),
              letters[format],
            );
            await sinks[format].prepareCommit?.({ id: snapshot, positions: {} }, letters[format]);
            await sinks[format].commit?.({ id: snapshot, positions: {} });
          }
          const refused = (d: DeadLetters) => d.records.map((l) => [l.record.seq, l.reason]);
          expect(refused(letters.binary)).toEqual(refused(letters.text));
          const textRows = await rowsOf(target, 'oracle_text', from, nextSeq);
          const binaryRows = await rowsOf(target, 'oracle_binary', from, nextSeq);
          expect(binaryRows).toEqual(textRows);
          expect(textRows.length + letters.text.records.length).toBe(records.length);
          stored += textRows.length;
          total += records.length;
        },
      ),
      // A run is two COPYs and two commits: shrinking is bounded in time, not in steps.
      { numRuns: 60, interruptAfterTimeLimit: 60_000, markInterruptAsFailure: false, endOnFailure: true },
    );
    // Most records are stored: the comparison is of rows, not of dead letters.
    expect(stored).toBeGreaterThan(total / 3);
  }, 120_000);
});
