import { isIP } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { collectOutput, originOf, testContext } from '../../../test/support/source-output.ts';
import { createGeneratorSource } from './generator.ts';
import { createLineMaker, LOG_FORMATS, type LogFormat } from './lines.ts';
import { CLIENTS } from './pools.ts';
import type { GeneratorSourceOptions } from './schema.ts';

const CLF = String.raw`(\S+) - (\S+) \[(\d{2})/(\w{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) \+0000\] "([A-Z]+) (/\S*) (HTTP/[\d.]+)" (\d{3})`;
const SHAPES: Record<Exclude<LogFormat, 'nginx_json'>, RegExp> = {
  apache_common: new RegExp(`^${CLF} (\\d+|-)$`),
  apache_combined: new RegExp(`^${CLF} (\\d+|-) "([^"]*)" "([^"]*)"$`),
  nginx_combined: new RegExp(`^${CLF} (\\d+) "([^"]*)" "([^"]*)"$`),
  nginx_combined_request_time: new RegExp(`^${CLF} (\\d+) "([^"]*)" "([^"]*)" (\\d+\\.\\d{3})$`),
};

function take(n: number, options: Parameters<typeof createLineMaker>[0]): string[] {
  const maker = createLineMaker(options);
  return Array.from({ length: n }, () => maker.next());
}

function wellFormed(format: LogFormat, line: string): boolean {
  if (format !== 'nginx_json') return SHAPES[format].test(line);
  try {
    const o = JSON.parse(line) as Record<string, unknown>;
    return typeof o.status === 'number' && typeof o.request === 'string' && typeof o.time === 'string';
  } catch {
    return false;
  }
}

function options(extra: Partial<GeneratorSourceOptions> = {}): GeneratorSourceOptions {
  return {
    format: 'nginx_combined',
    seed: 1,
    malformed_ratio: 0,
    start_time: '2026-01-01T00:00:00Z',
    with_sequence: false,
    ...extra,
  };
}

describe('client pool', () => {
  it('holds only valid IPv4 and IPv6 addresses, some of each', () => {
    expect(CLIENTS.filter((ip) => isIP(ip) === 0)).toEqual([]);
    expect(CLIENTS.some((ip) => isIP(ip) === 6)).toBe(true);
    expect(CLIENTS.some((ip) => isIP(ip) === 4)).toBe(true);
  });
});

describe('line maker', () => {
  it('makes the same lines for the same seed, other lines for another', () => {
    const a = take(5000, { seed: 7, malformed_ratio: 0.02 });
    expect(take(5000, { seed: 7, malformed_ratio: 0.02 })).toEqual(a);
    const b = take(5000, { seed: 8, malformed_ratio: 0.02 });
    expect(b.filter((line, i) => line === a[i]).length).toBeLessThan(50);
  });

  it('continues the same sequence from any start index', () => {
    const all = take(12000, { seed: 3, malformed_ratio: 0.05, with_sequence: true });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 11000 }), (start) => {
        const maker = createLineMaker({ seed: 3, malformed_ratio: 0.05, with_sequence: true, start_index: start });
        expect(maker.index).toBe(start);
        for (let i = start; i < Math.min(start + 200, all.length); i++) expect(maker.next()).toBe(all[i]);
      }),
      { numRuns: 60 },
    );
  });

  it.each(LOG_FORMATS)('writes well-formed %s lines', (format) => {
    const lines = take(20000, { format, seed: 11, malformed_ratio: 0 });
    const bad = lines.filter((line) => !wellFormed(format, line));
    expect(bad).toEqual([]);
  });

  it('makes about malformed_ratio broken lines, of every kind', () => {
    const n = 100_000;
    const lines = take(n, { format: 'nginx_combined', seed: 5, malformed_ratio: 0.05 });
    const broken = lines.filter((line) => !wellFormed('nginx_combined', line));
    // Binomial: standard deviation about 69 lines; five of them either side.
    expect(Math.abs(broken.length - 0.05 * n)).toBeLessThan(350);
    expect(broken.some((line) => line === '')).toBe(true);
    expect(broken.some((line) => line.includes('\\x16\\x03\\x01') && line.includes('" 400 '))).toBe(true);
    expect(broken.some((line) => /[\x00-\x08\x80-\xff]/.test(line))).toBe(true);
    expect(broken.some((line) => /^\S+ - \S+ \[/.test(line) && !line.includes('\\x16'))).toBe(true);
    expect(lines.every((line) => !line.includes('\n'))).toBe(true);
    expect(take(20000, { seed: 5, malformed_ratio: 0 }).every((l) => wellFormed('nginx_combined', l))).toBe(true);
  });

  it('numbers every well-formed line with seq=<index> in its query string', () => {
    const lines = take(10000, { seed: 2, malformed_ratio: 0.02, with_sequence: true });
    lines.forEach((line, i) => {
      if (!wellFormed('nginx_combined', line)) return;
      const target = SHAPES.nginx_combined.exec(line)?.[10] as string;
      expect(target).toMatch(new RegExp(`[?&]seq=${i}$`));
    });
  });

  it('looks like real traffic: some IPv6, mostly 200, bots and curl among the agents', () => {
    const lines = take(50000, { seed: 9, malformed_ratio: 0 });
    const fields = lines.map((line) => SHAPES.nginx_combined.exec(line) as RegExpExecArray);
    const share = (pred: (m: RegExpExecArray) => boolean) => fields.filter(pred).length / fields.length;
    expect(share((m) => (m[1] as string).includes(':'))).toBeGreaterThan(0.01);
    expect(share((m) => m[12] === '200')).toBeGreaterThan(0.6);
    expect(share((m) => (m[12] as string).startsWith('5'))).toBeGreaterThan(0.001);
    expect(share((m) => /bot/i.test(m[15] as string))).toBeGreaterThan(0.02);
    expect(share((m) => (m[15] as string).startsWith('curl/'))).toBeGreaterThan(0.001);
    expect(share((m) => (m[10] as string).includes('?'))).toBeGreaterThan(0.1);
    expect(new Set(fields.map((m) => m[1])).size).toBeGreaterThan(500);
  });

  it('starts at start_time and advances timestamps with the request rate', () => {
    const lines = take(1000, {
      seed: 4,
      malformed_ratio: 0,
      start_time: '2026-03-01T10:00:00Z',
      requests_per_second: 10,
    });
    const seconds = lines.map((line) => {
      const m = SHAPES.nginx_combined.exec(line) as RegExpExecArray;
      return Date.parse(`${m[5]}-03-${m[3]}T${m[6]}:${m[7]}:${m[8]}Z`) / 1000;
    });
    const start = Date.parse('2026-03-01T10:00:00Z') / 1000;
    expect(seconds[0]).toBe(start);
    // 1000 requests at 10 per second: about 100 seconds, never going back more than a second.
    expect((seconds.at(-1) as number) - start).toBeGreaterThanOrEqual(99);
    expect((seconds.at(-1) as number) - start).toBeLessThanOrEqual(101);
    expect(seconds.every((s, i) => i === 0 || s >= (seconds[i - 1] as number) - 1)).toBe(true);
  });

  it('refuses options it cannot honour', () => {
    expect(() => createLineMaker({ malformed_ratio: 2 })).toThrow(RangeError);
    expect(() => createLineMaker({ start_time: 'yesterday' })).toThrow(RangeError);
  });
});

describe('generator source', () => {
  it('emits count lines in batches, its position being the count so far, and a rerun continues', async () => {
    const all = take(2500, { seed: 6, malformed_ratio: 0.01, with_sequence: true });
    const first = collectOutput({ stopAfterBatches: 3 });
    const opts = options({ count: 2500, seed: 6, malformed_ratio: 0.01, with_sequence: true });
    await createGeneratorSource(opts, testContext({ batchMaxRecords: 400 })).run(first);
    expect(first.batches.map((b) => b.position)).toEqual([400, 800, 1200]);
    const second = collectOutput();
    await createGeneratorSource(opts, testContext({ batchMaxRecords: 400, restoredPosition: 1200 })).run(second);
    expect([...first.messages, ...second.messages]).toEqual(all);
    expect(second.lastPosition).toBe(2500);
    expect(originOf(second.records[0] as never)).toEqual({ source: 'src', file: 'generator', line: 1201 });
    expect(second.progressCalls.at(-1)?.done).toBe(second.progressCalls.at(-1)?.total);
  });

  it('paces itself at rate_per_second', async () => {
    const out = collectOutput();
    const started = Date.now();
    await createGeneratorSource(options({ count: 60, rate_per_second: 300 }), testContext()).run(out);
    expect(out.messages).toHaveLength(60);
    expect(Date.now() - started).toBeGreaterThanOrEqual(180);
    // Small batches keep latency low: about ten a second.
    expect(out.batches.every((b) => b.records.length <= 30)).toBe(true);
  });

  it('runs endlessly without count, until stopped', async () => {
    const out = collectOutput({ stopAfterBatches: 20 });
    await createGeneratorSource(options(), testContext({ batchMaxRecords: 100 })).run(out);
    expect(out.messages).toHaveLength(2000);
  });

  it('with start_time now, stamps lines with the current time', async () => {
    const out = collectOutput();
    await createGeneratorSource(options({ count: 1, start_time: 'now' }), testContext()).run(out);
    const m = SHAPES.nginx_combined.exec(out.messages[0] as string) as RegExpExecArray;
    const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
    const month = String(months.indexOf(m[4] as string) + 1).padStart(2, '0');
    const stamped = Date.parse(`${m[5]}-${month}-${m[3]}T${m[6]}:${m[7]}:${m[8]}Z`);
    expect(Math.abs(stamped - Date.now())).toBeLessThan(5000);
  });
});
