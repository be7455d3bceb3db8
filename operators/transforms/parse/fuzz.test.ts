/** Fuzz: arbitrary text never throws, and every line becomes exactly one record or one dead letter. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type DeadLetter, type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import { createParse, fixture } from './test-support.ts';

const seeds = [
  ...fixture('oddities.log').split('\n'),
  ...fixture('mixed/access-common.log').split('\n'),
  ...fixture('mixed/nginx-json.log').split('\n'),
  ...fixture('mixed/nginx-request-time.log').split('\n'),
  ...fixture('apache-error.log').split('\n'),
  ...fixture('nginx-error.log').split('\n'),
].filter((l) => l !== '');

/** A real line with random edits: cut, inserted and replaced characters hit every branch of the scanners. */
const mutated = fc
  .tuple(
    fc.constantFrom(...seeds),
    fc.array(
      fc.tuple(
        fc.nat(),
        fc.nat({ max: 3 }),
        fc.string({
          unit: fc.oneof(
            fc.constantFrom('"', '\\', '[', ']', ' ', '-', '?', ':', '{', '}', 'x'),
            fc.string({ unit: 'binary', maxLength: 1 }),
          ),
          maxLength: 4,
        }),
      ),
      { maxLength: 4 },
    ),
  )
  .map(([line, edits]) => {
    let out = line;
    for (const [at, cut, insert] of edits) {
      const i = at % (out.length + 1);
      out = out.slice(0, i) + insert + out.slice(i + cut);
    }
    return out;
  });

const anyLine = fc.oneof(mutated, fc.string({ unit: 'binary', maxLength: 300 }), fc.string({ maxLength: 200 }));

const FORMATS = [
  'auto',
  'combined',
  'nginx_upstream_time',
  'json',
  'error_log',
  { apache: '%{%d/%b/%Y %T}t.%{msec_frac}t %{%z}t %m %U%q %H "%{User-Agent}i" %D' },
  { nginx: '$remote_addr [$time_iso8601] "$request_method $uri$is_args$args" $status $upstream_addr $msec' },
] as const;

describe('fuzz', () => {
  for (const format of FORMATS) {
    it(`never throws and accounts for every line (format ${JSON.stringify(format)})`, () => {
      const transform = createParse({ format: format as never, sample_lines: 5 });
      fc.assert(
        fc.property(fc.array(fc.tuple(anyLine, fc.boolean()), { minLength: 1, maxLength: 20 }), (lines) => {
          const records: EtlRecord[] = lines.map(([message, truncated], i) => ({
            message,
            ...(truncated ? { truncated: true } : {}),
            [ORIGIN]: { source: 'fuzz', file: `f${i % 3}.log`, line: i + 1, offset: i * 100 },
          }));
          const ports = transform.process(records);
          const out = [...(ports.default ?? []), ...(ports.error_log ?? [])];
          const dead = (ports.dead_letter ?? []) as DeadLetter[];
          expect(out.length + dead.length).toBe(records.length);
          for (const rec of out) expect(rec[ORIGIN]?.source).toBe('fuzz');
          for (const dl of dead) {
            expect(dl.reason.length).toBeGreaterThan(0);
            const line = dl.origin?.line as number;
            expect(dl.raw).toBe(records[line - 1]?.message);
            expect(dl.origin?.file).toBe(`f${(line - 1) % 3}.log`);
          }
        }),
        { numRuns: 300 },
      );
    });
  }
});
