import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import { loadPipelinesFromString } from '../../../engine/config/load.ts';
import type { PortRecords } from '../../../engine/operator.ts';
import { type DeadLetter, type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import type { RecordSchema } from '../../../engine/record-schema.ts';
import { metricKey, recordingContext } from '../../../test/support/context.ts';
import { accessRecordSchema, emptyAccessRecord } from '../../shared/log-records.ts';
import definition from './index.ts';
import { compileRule } from './rules.ts';
import type { Rule, ValidateOptions } from './schema.ts';
import type { ValidateTransform } from './validate.ts';

const access = accessRecordSchema as RecordSchema;

async function make(rules: Rule[], extra: Partial<ValidateOptions> = {}) {
  const ctx = recordingContext({ id: 'checked', inputSchema: access });
  const transform = (await definition.create({ rules, ...extra }, ctx)) as ValidateTransform;
  return { transform, ctx };
}

function rec(fields: Record<string, unknown>): EtlRecord {
  return { ...emptyAccessRecord(), ...fields };
}

/** Which records of `inputs` pass one rule (on `default`), by their index. */
async function passing(rule: Rule, inputs: Record<string, unknown>[]): Promise<boolean[]> {
  const { transform } = await make([{ ...rule, action: 'drop' } as Rule]);
  const records = inputs.map(rec);
  const out = transform.process(records) as PortRecords;
  return records.map((r) => (out.default ?? []).includes(r));
}

describe('validate checks', () => {
  it('ip: valid addresses of the family; public_only refuses reserved ranges', async () => {
    const ips = [
      '203.0.113.9',
      '8.8.8.8',
      '10.0.0.1',
      '::1',
      '2001:4860::8888',
      '::ffff:192.168.1.1',
      '999.1.1.1',
      'x',
    ];
    const values = ips.map((client_ip) => ({ client_ip }));
    expect(await passing({ name: 'r', ip: { field: 'client_ip' } }, values)).toEqual([
      true,
      true,
      true,
      true,
      true,
      true,
      false,
      false,
    ]);
    expect(await passing({ name: 'r', ip: { field: 'client_ip', public_only: true } }, values)).toEqual([
      false, // 203.0.113.0/24 is documentation (TEST-NET-3)
      true,
      false,
      false,
      true,
      false,
      false,
      false,
    ]);
    expect(await passing({ name: 'r', ip: { field: 'client_ip', version: '6' } }, values.slice(0, 5))).toEqual([
      false,
      false,
      false,
      true,
      true,
    ]);
    expect(await passing({ name: 'r', ip: { field: 'client_ip' } }, [{ client_ip: '127.1' }, {}])).toEqual([
      false,
      true,
    ]);
  });

  it('timestamp: skew into the future, age into the past, null only when allowed', async () => {
    const now = Date.now();
    const at = (ms: number) => ({ timestamp: new Date(now + ms).toISOString() });
    const values = [at(0), at(60_000), at(3_600_000), at(-7_200_000), { timestamp: 'yesterday' }, { timestamp: null }];
    expect(
      await passing(
        { name: 'r', timestamp: { field: 'timestamp', max_future_seconds: 600, max_age_seconds: 3600 } },
        values,
      ),
    ).toEqual([true, true, false, false, false, true]);
    expect(await passing({ name: 'r', timestamp: { field: 'timestamp', allow_null: false } }, values)).toEqual([
      true,
      true,
      false,
      true,
      false,
      false,
    ]);
  });

  it('path and url: percent-encoding, spaces, length, scheme', async () => {
    const paths = ['/a/b%20c', '/a%zz', '/a b', 'relative', '*', `/${'x'.repeat(20)}`];
    expect(
      await passing(
        { name: 'r', path: { field: 'path', max_length: 20 } },
        paths.map((path) => ({ path })),
      ),
    ).toEqual([true, false, false, false, true, false]);
    const urls = ['https://example.com/a?b=1', 'ftp://example.com/', 'not a url', 'https://e.com/%G1', 'http:/x'];
    expect(
      await passing(
        { name: 'r', url: { field: 'referrer' } },
        urls.map((referrer) => ({ referrer })),
      ),
    ).toEqual([true, false, false, false, true]);
  });

  it('method, status, non_negative, required, regex, enum, range', async () => {
    expect(await passing({ name: 'r', method: { field: 'method' } }, [{ method: 'GET' }, { method: 'get' }])).toEqual([
      true,
      false,
    ]);
    expect(
      await passing({ name: 'r', status: { field: 'status' } }, [
        { status: 100 },
        { status: 599 },
        { status: 600 },
        { status: 99 },
      ]),
    ).toEqual([true, true, false, false]);
    expect(await passing({ name: 'r', non_negative: { field: 'bytes' } }, [{ bytes: 0 }, { bytes: -1 }])).toEqual([
      true,
      false,
    ]);
    expect(
      await passing({ name: 'r', required: { fields: ['client_ip', 'status'] } }, [
        { client_ip: '1.2.3.4', status: 200 },
        { client_ip: '1.2.3.4' },
      ]),
    ).toEqual([true, false]);
    expect(
      await passing({ name: 'r', regex: { field: 'user_agent', pattern: '^curl/', ignore_case: true } }, [
        { user_agent: 'CURL/8' },
        { user_agent: 'wget' },
      ]),
    ).toEqual([true, false]);
    expect(
      await passing({ name: 'r', enum: { field: 'protocol', values: ['HTTP/1.1'] } }, [
        { protocol: 'HTTP/1.1' },
        { protocol: 'HTTP/1.0' },
      ]),
    ).toEqual([true, false]);
    expect(
      await passing({ name: 'r', range: { field: 'request_time_ms', min: 0, max: 1000 } }, [
        { request_time_ms: 0 },
        { request_time_ms: 1000.5 },
      ]),
    ).toEqual([true, false]);
  });

  it('condition: a CEL expression over the record', async () => {
    const rule: Rule = { name: 'r', condition: 'record.status < 500 || has(record.upstream_status)' };
    expect(
      await passing(rule, [{ status: 200 }, { status: 502, upstream_status: '502' }, { status: 502 }, {}]),
    ).toEqual([true, true, false, false]);
  });
});

describe('validate actions', () => {
  const rules: Rule[] = [
    { name: 'ip', action: 'dead_letter', ip: { field: 'client_ip' } },
    { name: 'method', action: 'drop', method: { field: 'method' } },
    { name: 'path', action: 'flag', path: { field: 'path' } },
  ];

  it('dead-letters with every failed rule in the reason, drops, flags, and keeps the origin', async () => {
    const { transform, ctx } = await make(rules);
    const origin = { source: 'logs', file: 'a.log', line: 3, offset: 10 };
    const records = [
      rec({ client_ip: '1.2.3.4', method: 'GET', path: '/' }),
      rec({ client_ip: 'bad', method: 'BREW', path: '/' }),
      rec({ client_ip: '1.2.3.4', method: 'BREW', path: '/a b' }),
      { ...rec({ client_ip: '1.2.3.4', method: 'GET', path: '/a%' }), [ORIGIN]: origin },
    ];
    const out = transform.process(records) as PortRecords;
    const dead = out.dead_letter as DeadLetter[];
    expect(dead).toHaveLength(1);
    expect(dead[0]?.reason).toBe(
      'rule ip: `client_ip` "bad" is not an IP address; rule method: `method` "BREW" is not an allowed method',
    );
    expect(dead[0]?.stage).toBe('checked');
    const passed = out.default ?? [];
    expect(passed.map((r) => [r.validation_failed, r.validation_rules])).toEqual([
      [false, []],
      [true, ['path']],
    ]);
    expect(passed[1]?.[ORIGIN]).toEqual(origin);
    expect(ctx.values.get(metricKey('etl_validate_records_total', { outcome: 'valid' }))).toBe(1);
    expect(ctx.values.get(metricKey('etl_validate_records_total', { outcome: 'dropped' }))).toBe(1);
    expect(ctx.values.get(metricKey('etl_validate_records_total', { outcome: 'dead_lettered' }))).toBe(1);
    expect(ctx.values.get(metricKey('etl_validate_records_total', { outcome: 'flagged' }))).toBe(1);
    expect(ctx.values.get(metricKey('etl_validate_rule_failures_total', { rule: 'method', action: 'drop' }))).toBe(2);
    expect(ctx.values.get(metricKey('etl_validate_valid_ratio'))).toBe(0.25);
  });

  it('leaves records unchanged without flag rules', async () => {
    const { transform } = await make([{ name: 'ip', ip: { field: 'client_ip' } }]);
    const record = rec({ client_ip: '1.2.3.4' });
    expect((transform.process([record]) as PortRecords).default?.[0]).toBe(record);
  });

  it('reports the valid share and fails below min_valid_ratio', async () => {
    const { transform } = await make(rules, { min_valid_ratio: 0.5 });
    expect(transform.summarize()).toEqual({ lines: ['no record checked'] });
    transform.process([rec({ client_ip: '1.2.3.4', method: 'GET', path: '/' }), rec({ client_ip: 'x' })]);
    expect(transform.summarize()).toEqual({
      lines: ['50% valid (1 of 2 records); min_valid_ratio 0.5 (50%)', 'rule ip (dead_letter): 1 failed (50%)'],
    });
    transform.process([rec({ client_ip: '1.2.3.4', method: 'PUT', path: 'x' })]);
    const report = transform.summarize();
    expect(report.lines[0]).toBe('33.33% valid (1 of 3 records); min_valid_ratio 0.5 (50%)');
    expect(report.failure).toBe(
      '33.33% of the records are valid, below min_valid_ratio 0.5 (rules failed most: ip 1, path 1)',
    );
  });
});

describe('validate never throws', () => {
  it('on arbitrary records, with every kind of rule, against an open schema', async () => {
    const ctx = recordingContext({ id: 'checked' });
    const all: Rule[] = [
      { name: 'a', ip: { field: 'client_ip', public_only: true } },
      { name: 'b', action: 'flag', timestamp: { field: 'timestamp', max_age_seconds: 10 } },
      { name: 'c', action: 'drop', path: { field: 'path' } },
      { name: 'd', url: { field: 'referrer' } },
      { name: 'e', method: { field: 'method' } },
      { name: 'f', status: { field: 'status' } },
      { name: 'g', non_negative: { field: 'bytes' } },
      { name: 'h', required: { fields: ['client_ip'] } },
      { name: 'i', regex: { field: 'user_agent', pattern: '^a+$' } },
      { name: 'j', enum: { field: 'status', values: [200, 'x', true] } },
      { name: 'k', range: { field: 'bytes', min: 0 } },
      { name: 'l', action: 'flag', condition: 'record.status > 3 && record.path.startsWith("/")' },
    ];
    const transform = (await definition.create({ rules: all }, ctx)) as ValidateTransform;
    const fields = ['client_ip', 'timestamp', 'path', 'referrer', 'method', 'status', 'bytes', 'user_agent'];
    fc.assert(
      fc.property(fc.array(fc.dictionary(fc.constantFrom(...fields), fc.anything()), { maxLength: 20 }), (records) => {
        const out = transform.process(records) as PortRecords;
        const n = (out.default?.length ?? 0) + (out.dead_letter?.length ?? 0);
        expect(n).toBeLessThanOrEqual(records.length);
      }),
      { numRuns: 300 },
    );
    expect(transform.summarize().lines.length).toBeGreaterThan(0);
  });
});

describe('validate ip rule', () => {
  /** The verdict as ipaddr.js alone gives it: what the rule meant before dotted IPv4 was read by hand. */
  function oracle(value: string, version: string, publicOnly: boolean): boolean {
    if (!(ipaddr.IPv4.isValidFourPartDecimal(value) || ipaddr.IPv6.isValid(value))) return false;
    let address = ipaddr.parse(value);
    if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress()) {
      address = (address as ipaddr.IPv6).toIPv4Address();
    }
    if (version === '4' && address.kind() !== 'ipv4') return false;
    if (version === '6' && address.kind() !== 'ipv6') return false;
    return !publicOnly || address.range() === 'unicast';
  }

  it('passes exactly the addresses ipaddr.js reads, of the family and range asked', () => {
    const octet = fc.oneof(
      fc.constantFrom(0, 10, 127, 169, 172, 192, 224, 255).map(String),
      fc.integer({ min: 0, max: 300 }).map(String),
      fc.constantFrom('', '00', '01', 'x'),
    );
    const text = fc.oneof(
      fc.array(octet, { minLength: 3, maxLength: 5 }).map((parts) => parts.join('.')),
      fc.ipV6(),
      fc.ipV4().map((v4) => `::ffff:${v4}`),
      fc.string({ unit: fc.constantFrom('0', '1', 'f', ':', '.', ' '), maxLength: 12 }),
    );
    const versions = ['any', '4', '6'] as const;
    const checks = versions.flatMap((version) =>
      [false, true].map((publicOnly) => {
        const ip =
          version === 'any'
            ? { field: 'a', public_only: publicOnly }
            : { field: 'a', version, public_only: publicOnly };
        const made = compileRule({ name: 'r', ip } as Rule, 0, access);
        if (!('rule' in made)) throw new Error('rule did not compile');
        return { version, publicOnly, check: made.rule.check };
      }),
    );
    fc.assert(
      fc.property(text, (value) => {
        // Twice: the second answer may come from the rule's cache.
        for (let round = 0; round < 2; round++)
          for (const { version, publicOnly, check } of checks) {
            expect(check({ a: value }, 0) === undefined, `${value} ${version} ${publicOnly}`).toBe(
              oracle(value, version, publicOnly),
            );
          }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('validate options at etl validate', () => {
  const pipeline = (rules: string) => `apiVersion: etl/v1
kind: Pipeline
metadata: { name: v }
spec:
  sources:
    logs: { type: generator, count: 1 }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
    checked:
      type: validate
      inputs: [parsed]
      rules:
${rules}
  sinks:
    out: { type: blackhole, inputs: [checked] }
`;
  const errors = async (rules: string) => {
    const { diagnostics } = await loadPipelinesFromString(pipeline(rules), 'p.yaml');
    return diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.line}:${d.column} ${d.message}`);
  };

  it('points at misspelt fields, inside conditions too, at their line and column', async () => {
    expect(
      await errors(`        - { name: a, ip: { field: clinet_ip } }
        - name: b
          condition: 'record.status < 500 && record.mehtod == "GET"'
        - name: c
          condition: >
            record.status < 500 ||
            record.pth == "/"
        - { name: d, required: { fields: [status, sttus] } }
        - name: e
          condition: |
            record.status < 500 &&
              record.bytse > 0
        - { name: f, condition: "record.status > 1 && record.usr == \\"x\\"" }`),
    ).toEqual([
      '13:35 unknown field `clinet_ip` — did you mean `client_ip`?',
      '15:53 unknown field `mehtod` — did you mean `method`?',
      '19:20 unknown field `pth` — did you mean `path`?',
      '20:51 unknown field `sttus` — did you mean `status`?',
      '24:22 unknown field `bytse` — did you mean `bytes`?',
      '25:62 unknown field `usr` — did you mean `user`?',
    ]);
  });

  it('refuses type errors, bad patterns, duplicate names and empty ranges', async () => {
    expect(
      await errors(`        - { name: a, condition: 'record.method > 5' }
        - { name: b, regex: { field: path, pattern: '(' } }
        - { name: a, range: { field: bytes, min: 5, max: 1 } }`),
    ).toEqual([
      '13:34 no such overload: string > int',
      '14:53 Invalid regular expression: /(/u: Unterminated group',
      '15:19 rule name `a` is already used by rules[0]',
      '15:29 min 5 is above max 1',
    ]);
  });

  it('warns about a check on a field of a type it always fails on', async () => {
    const { diagnostics } = await loadPipelinesFromString(
      pipeline(`        - { name: a, ip: { field: status } }
        - { name: b, range: { field: method, min: 1 } }
        - { name: c, status: { field: status } }`),
      'p.yaml',
    );
    expect(diagnostics.map((d) => `${d.severity} ${d.line}:${d.column} ${d.message}`)).toEqual([
      'warning 13:35 `status` is integer here: the `ip` check fails on every value it has',
      'warning 14:38 `method` is string here: the `range` check fails on every value it has',
    ]);
  });

  it('declares the flag fields in its output schema only with flag rules', () => {
    const flagging = definition.outputSchemas?.(
      { rules: [{ name: 'a', action: 'flag', status: { field: 'status' } }] },
      access,
    );
    expect(flagging?.default?.properties?.validation_failed).toEqual(expect.objectContaining({ type: 'boolean' }));
    expect(flagging?.default?.required).toEqual(expect.arrayContaining(['validation_failed', 'validation_rules']));
    expect(definition.outputSchemas?.({ rules: [{ name: 'a', status: { field: 'status' } }] }, access)?.default).toBe(
      access,
    );
  });
});
