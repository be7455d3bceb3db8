import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadPipelinesFromString } from '../../../engine/config/load.ts';
import type { PortRecords } from '../../../engine/operator.ts';
import { type DeadLetter, type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import { OPEN_RECORD_SCHEMA, type RecordSchema } from '../../../engine/record-schema.ts';
import { createRecordAjv } from '../../../engine/schema/ajv.ts';
import { metricKey, recordingContext } from '../../../test/support/context.ts';
import { accessRecordSchema, emptyAccessRecord } from '../../shared/log-records.ts';
import definition from './index.ts';
import { NormalizeTransform } from './normalize.ts';
import type { Step } from './schema.ts';
import { walkSteps } from './steps.ts';

const access = accessRecordSchema as RecordSchema;

async function run(steps: Step[], records: EtlRecord[], schema: RecordSchema = access) {
  const ctx = recordingContext({ id: 'norm', inputSchema: schema });
  const transform = await definition.create({ steps }, ctx);
  const out = (await transform.process(records)) as PortRecords;
  return { out: out.default ?? [], dead: (out.dead_letter ?? []) as DeadLetter[], ctx };
}

function rec(fields: Record<string, unknown>): EtlRecord {
  return { ...emptyAccessRecord(), ...fields };
}

/** The default port's records after `steps`, for records of the access schema with these fields. */
async function normalized(steps: Step[], ...fields: Record<string, unknown>[]): Promise<EtlRecord[]> {
  const { out, dead } = await run(steps, fields.map(rec));
  expect(dead).toEqual([]);
  return out;
}

function declared(steps: Step[], schema: RecordSchema = access): RecordSchema {
  const out = definition.outputSchemas?.({ steps }, schema)?.default;
  if (out === undefined) throw new Error('no schema declared');
  return out;
}

describe('normalize steps', () => {
  it('rename moves the value to the new name, never changing the record given', async () => {
    const input = rec({ client_ip: '1.2.3.4' });
    const { out } = await run([{ rename: { from: 'client_ip', to: 'ip' } }], [input]);
    expect(out[0]).toMatchObject({ ip: '1.2.3.4' });
    expect(out[0]).not.toHaveProperty('client_ip');
    expect(input.client_ip).toBe('1.2.3.4');
    expect(declared([{ rename: { from: 'client_ip', to: 'ip' } }]).properties).toHaveProperty('ip');
    expect(declared([{ rename: { from: 'client_ip', to: 'ip' } }]).properties).not.toHaveProperty('client_ip');
  });

  it('cast converts, keeps null, and dead-letters what it cannot convert with the step and value in the reason', async () => {
    const origin = { source: 'logs', file: 'a.log', line: 3 };
    const bad = rec({ user: 'abc' });
    bad[ORIGIN] = origin;
    const { out, dead, ctx } = await run(
      [{ cast: { field: 'user', to: 'integer' } }],
      [rec({ user: ' 42 ' }), rec({ user: null }), bad, rec({ user: '-7' })],
    );
    expect(out.map((r) => r.user)).toEqual([42, null, -7]);
    expect(dead).toHaveLength(1);
    expect(dead[0]?.reason).toBe('steps[0] cast user: "abc" is not an integer');
    expect(dead[0]?.origin).toMatchObject(origin);
    expect(JSON.parse(dead[0]?.raw as string).user).toBe('abc');
    expect(ctx.values.get(metricKey('etl_normalize_dead_letters_total'))).toBe(1);
  });

  it('cast with on_error: null nulls what it cannot convert; each target type', async () => {
    const values = ['1', 'yes', 'No', '2.5', 'x', '', '9007199254740993'];
    const cast = (to: 'integer' | 'number' | 'string' | 'boolean') =>
      normalized([{ cast: { field: 'user', to, on_error: 'null' } }], ...values.map((user) => ({ user }))).then((rs) =>
        rs.map((r) => r.user),
      );
    expect(await cast('integer')).toEqual([1, null, null, null, null, null, null]);
    expect(await cast('number')).toEqual([1, null, null, 2.5, null, null, 9007199254740992]);
    expect(await cast('boolean')).toEqual([true, true, false, null, null, null, null]);
    expect(await cast('string')).toEqual(values);
    expect((await normalized([{ cast: { field: 'status', to: 'string' } }], { status: 404 }))[0]?.status).toBe('404');
    expect(declared([{ cast: { field: 'status', to: 'string' } }]).properties?.status).toEqual({
      type: ['string', 'null'],
    });
  });

  it('default fills null and absent fields only', async () => {
    const out = await normalized(
      [{ default: { field: 'referrer', value: '-' } }],
      { referrer: null },
      { referrer: 'r' },
    );
    expect(out.map((r) => r.referrer)).toEqual(['-', 'r']);
    const schema = declared([{ default: { field: 'referrer', value: '-' } }]);
    expect(schema.properties?.referrer).toEqual({ type: 'string' });
    expect(schema.required).toContain('referrer');
  });

  it('drop removes fields', async () => {
    const out = await normalized([{ drop: { fields: ['user_agent', 'ident'] } }], { user_agent: 'x' });
    expect(out[0]).not.toHaveProperty('user_agent');
    expect(out[0]).not.toHaveProperty('ident');
    expect(declared([{ drop: { fields: ['user_agent'] } }]).properties).not.toHaveProperty('user_agent');
  });

  it('compute sets a field of the type the expression gives', async () => {
    const steps: Step[] = [
      { compute: { field: 'kb', expression: 'record.bytes / 1024' } },
      { compute: { field: 'ratio', expression: 'double(record.bytes) / 1000.0' } },
      { compute: { field: 'line', expression: 'record.method + " " + record.path' } },
      { compute: { field: 'error', expression: 'record.status >= 500' } },
      { compute: { field: 'at', expression: 'timestamp(record.timestamp) + duration("1h")' } },
      { compute: { field: 'tags', expression: '{"m": record.method, "n": string(record.status)}' } },
      { compute: { field: 'sizes', expression: '[record.bytes, record.bytes * 2]' } },
    ];
    const out = await normalized(steps, {
      bytes: 4096,
      method: 'GET',
      path: '/a',
      status: 503,
      timestamp: '2026-12-05T10:00:00.000Z',
    });
    expect(out[0]).toMatchObject({
      kb: 4,
      ratio: 4.096,
      line: 'GET /a',
      error: true,
      at: '2026-12-05T11:00:00.000Z',
      tags: { m: 'GET', n: '503' },
      sizes: [4096, 8192],
    });
    const props = declared(steps).properties ?? {};
    expect([props.kb, props.ratio, props.line, props.error, props.at, props.tags, props.sizes]).toEqual([
      { type: 'integer' },
      { type: 'number' },
      { type: 'string' },
      { type: 'boolean' },
      { type: 'string', format: 'date-time' },
      { type: 'object' },
      { type: 'array' },
    ]);
  });

  it('compute dead-letters an error (a null field read) or nulls it with on_error: null', async () => {
    const step = (onError: 'dead_letter' | 'null'): Step[] => [
      { compute: { field: 'who', expression: 'record.user + "!"', on_error: onError } },
    ];
    const { out, dead } = await run(step('dead_letter'), [rec({ user: 'ann' }), rec({ user: null })]);
    expect(out.map((r) => r.who)).toEqual(['ann!']);
    expect(dead[0]?.reason).toBe('steps[0] compute who: `user` is null or absent (test it with has(record.user))');
    expect((await normalized(step('null'), { user: null }))[0]?.who).toBeNull();
    expect(declared(step('null')).properties?.who).toEqual({ type: ['string', 'null'] });
    const big = await run([{ compute: { field: 'n', expression: '9007199254740993' } }], [rec({})]);
    expect(big.dead[0]?.reason).toMatch(/beyond the integers a record holds exactly/);
  });

  it('lowercase_host lower-cases and removes a trailing dot', async () => {
    const out = await normalized(
      [{ lowercase_host: { field: 'vhost' } }],
      { vhost: 'WWW.Example.COM.' },
      { vhost: null },
    );
    expect(out.map((r) => r.vhost)).toEqual(['www.example.com', null]);
  });

  it('url splits off the query and fragment, decodes without ever throwing, and maps the query', async () => {
    const out = await normalized(
      [{ url: { field: 'referrer', query_field: 'referrer_query' } }],
      { referrer: 'https://ex.com/caf%C3%A9/%zz/%E9?q=a+b&x=%zz&q=c#top' },
      { referrer: '/plain' },
      { referrer: null },
    );
    expect(out.map((r) => [r.referrer, r.referrer_query])).toEqual([
      ['https://ex.com/café/%zz/\ufffd', { q: 'c', x: '%zz' }],
      ['/plain', {}],
      [null, null],
    ]);
    const raw = await normalized([{ url: { field: 'path', decode: false } }], { path: '/a%20b?x=1' });
    expect(raw[0]?.path).toBe('/a%20b');
  });

  it('query splits a query string into a map', async () => {
    const out = await normalized(
      [{ query: { field: 'query', to: 'params' } }],
      { query: 'a=1&b=%2F&__proto__=x' },
      { query: null },
    );
    expect(out.map((r) => r.params)).toEqual([{ a: '1', b: '/', ['__proto__']: 'x' }, null]);
    expect(Object.getPrototypeOf(out[0]?.params)).toBeNull();
  });

  it('endpoint templates collapse ids, with built-in and own patterns, into a new field', async () => {
    const paths = [
      '/users/123/orders/9',
      '/files/6f1e2a3b-1c2d-4e5f-8a9b-0c1d2e3f4a5b',
      '/blobs/d41d8cd98f00b204e9800998ecf8427e?download=1',
      '/reports/2026-12-05/summary',
      '/products/AB-12345/reviews',
      '/short/abc123/',
      '/',
    ];
    const out = await normalized(
      [{ endpoint: { field: 'path', to: 'endpoint', patterns: [{ regex: '[A-Z]{2}-\\d+', placeholder: ':sku' }] } }],
      ...paths.map((path) => ({ path })),
    );
    expect(out.map((r) => r.endpoint)).toEqual([
      '/users/:id/orders/:id',
      '/files/:id',
      '/blobs/:id',
      '/reports/:date/summary',
      '/products/:sku/reviews',
      '/short/abc123/',
      '/',
    ]);
    expect(out[0]?.path).toBe('/users/123/orders/9');
    const integersOnly = await normalized([{ endpoint: { field: 'path', to: 'e', builtin: ['integer'] } }], {
      path: '/a/12/2026-12-05/d41d8cd98f00b204e9800998ecf8427e',
    });
    expect(integersOnly[0]?.e).toBe('/a/:id/2026-12-05/d41d8cd98f00b204e9800998ecf8427e');
  });

  it('skips a step whose `when` cannot be evaluated, and counts it', async () => {
    const steps: Step[] = [{ default: { field: 'referrer', value: '-' }, when: 'record.user == "ann"' }];
    const { out, ctx } = await run(steps, [rec({ user: 'ann' }), rec({ user: null }), rec({ user: 'bob' })]);
    expect(out.map((r) => r.referrer)).toEqual(['-', null, null]);
    expect(ctx.values.get(metricKey('etl_normalize_when_errors_total', { step: '0' }))).toBe(1);
  });

  it('keeps where each record came from', async () => {
    const origin = { source: 'logs', file: 'a.log', line: 7 };
    const input = rec({ client_ip: '1.2.3.4' });
    input[ORIGIN] = origin;
    for (const steps of [
      [{ rename: { from: 'client_ip', to: 'ip' } }],
      [{ rename: { from: 'client_ip', to: 'ip' } }, { drop: { fields: ['ip'] }, when: 'true' }],
      [{ lowercase_host: { field: 'vhost' } }],
    ] as Step[][]) {
      const { out } = await run(steps, [input]);
      expect(out[0]?.[ORIGIN]).toBe(origin);
    }
  });

  it('applies steps in order, each to what the steps before left, and `when` per step', async () => {
    const steps: Step[] = [
      { rename: { from: 'path', to: 'uri' } },
      { endpoint: { field: 'uri', to: 'endpoint' } },
      { default: { field: 'user', value: 'anonymous' }, when: 'record.status < 400' },
      { compute: { field: 'kb', expression: 'record.bytes / 1024' }, when: 'has(record.bytes)' },
    ];
    const out = await normalized(steps, { path: '/u/1', status: 200, bytes: 2048 }, { path: '/u/2', status: 404 });
    expect(out.map((r) => [r.uri, r.endpoint, r.user, r.kb])).toEqual([
      ['/u/1', '/u/:id', 'anonymous', 2],
      ['/u/2', '/u/:id', null, undefined],
    ]);
    const schema = declared(steps);
    // A step under `when` may not apply: what it sets is optional, and may keep its former type.
    expect(schema.properties?.user).toEqual({ type: ['string', 'null'] });
    expect(schema.required).not.toContain('kb');
    expect(schema.required).toContain('endpoint');
  });
});

describe('normalize options at etl validate', () => {
  const pipeline = (steps: string) => `apiVersion: etl/v1
kind: Pipeline
metadata: { name: n }
spec:
  sources:
    logs: { type: generator, count: 1 }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
    norm:
      type: normalize
      inputs: [parsed]
      steps:
${steps}
  sinks:
    out: { type: blackhole, inputs: [norm] }
`;
  const errors = async (steps: string) => {
    const { diagnostics } = await loadPipelinesFromString(pipeline(steps), 'p.yaml');
    return diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.line}:${d.column} ${d.message}`);
  };

  it('checks each step against the fields the steps before leave, at line and column', async () => {
    expect(
      await errors(`        - rename: { from: clinet_ip, to: ip }
        - rename: { from: path, to: uri }
        - endpoint: { field: path, to: endpoint }
        - compute: { field: kb, expression: 'record.bytes / 1024 + size(record.pth)' }
        - drop: { fields: [uri, user_agent] }
        - cast: { field: uri, to: string }
          when: 'record.endpont == "/"'
        - default: { field: edpoint, value: x }`),
    ).toEqual([
      '13:27 unknown field `clinet_ip` — did you mean `client_ip`?',
      '15:30 unknown field `path`: it was renamed to `uri` by steps[1]',
      '16:80 unknown field `pth`',
      '18:26 unknown field `uri`: it was dropped by steps[4]',
      '19:25 unknown field `endpont` — did you mean `endpoint`?',
      '20:29 unknown field `edpoint` — did you mean `endpoint`?',
    ]);
  });

  it('refuses type errors, results no field can hold, and bad patterns', async () => {
    expect(
      await errors(`        - compute: { field: a, expression: 'record.method > 5' }
        - compute: { field: b, expression: 'duration("1s")' }
        - endpoint: { field: path, to: e, patterns: [{ regex: '(', placeholder: ':x' }] }
        - compute: { field: c, expression: 'record.zz' }`),
    ).toEqual([
      '13:45 no such overload: string > int',
      '14:44 the expression gives a google.protobuf.Duration, which no field can hold',
      '15:63 not a valid regular expression: Invalid regular expression: /^(?:()$/: Unterminated group',
      '16:52 unknown field `zz`',
    ]);
  });
});

describe('normalize warnings', () => {
  it('warns about a step on strings over a field declared with no string type', async () => {
    const { diagnostics } = await loadPipelinesFromString(
      `apiVersion: etl/v1
kind: Pipeline
metadata: { name: n }
spec:
  sources:
    logs: { type: generator, count: 1 }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
    norm:
      type: normalize
      inputs: [parsed]
      steps:
        - lowercase_host: { field: status }
        - cast: { field: bytes, to: string }
        - endpoint: { field: bytes, to: e }
  sinks:
    out: { type: blackhole, inputs: [norm] }
`,
      'p.yaml',
    );
    expect(diagnostics.map((d) => `${d.severity} ${d.line}:${d.column} ${d.message}`)).toEqual([
      'warning 13:36 `status` is integer here: the `lowercase_host` step changes only strings',
    ]);
  });
});

describe('normalize properties', () => {
  const ajv = createRecordAjv();
  const steps: Step[] = [
    { rename: { from: 'a', to: 'b' } },
    { cast: { field: 'c', to: 'integer', on_error: 'null' } },
    { cast: { field: 'd', to: 'boolean' } },
    { default: { field: 'e', value: 1.5 } },
    { lowercase_host: { field: 'h' } },
    { url: { field: 'u', query_field: 'uq' } },
    { query: { field: 'q', to: 'qm' } },
    { endpoint: { field: 'u', to: 'ep', patterns: [{ regex: '[a-z]+\\d', placeholder: ':x' }] } },
    { compute: { field: 'k', expression: 'record.b', on_error: 'null' }, when: 'has(record.b)' },
    { compute: { field: 'l', expression: 'string(record.e)' } },
    { drop: { fields: ['z'] }, when: 'record.e > 1.0' },
  ];
  const value = fc.oneof(
    fc.jsonValue({ maxDepth: 2 }),
    fc.constantFrom('/a/1?x=%zz', '%', '%E9%', 'HOST.', '9007199254740993', 'true', '1'),
    fc.string({ unit: 'binary' }),
  );
  const records = fc.array(
    fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'h', 'u', 'q', 'z', 'k', '__proto__', 'x'), value),
    { maxLength: 20 },
  );

  it('never throws on arbitrary records, and emits only records of the schema it declares', async () => {
    const validate = ajv.compile(declared(steps, OPEN_RECORD_SCHEMA));
    await fc.assert(
      fc.asyncProperty(records, async (input) => {
        const { out, dead } = await run(steps, input as EtlRecord[], OPEN_RECORD_SCHEMA);
        expect(out.length + dead.length).toBe(input.length);
        for (const record of out) expect(validate(record), JSON.stringify(validate.errors)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('leaves fields out from the start or at the end alike (closed schema, fields removed early)', async () => {
    const names = ['a', 'b', 'c', 'd', 'e', 'h', 'u', 'q', 'y', 'z', 'k', 'x'];
    const closed: RecordSchema = {
      type: 'object',
      additionalProperties: false,
      properties: Object.fromEntries(names.map((n) => [n, {}])),
    };
    const closedSteps: Step[] = [
      { cast: { field: 'c', to: 'integer', on_error: 'null' } },
      { rename: { from: 'a', to: 'b' } },
      { rename: { from: 'x', to: 'y' } },
      { default: { field: 'e', value: 'none' } },
      { compute: { field: 'k', expression: 'has(record.b)' } },
      { drop: { fields: ['y', 'q'] } },
      { drop: { fields: ['z'] }, when: 'has(record.e)' },
      { cast: { field: 'd', to: 'string' } },
    ];
    expect(walkSteps(closedSteps, closed).early).toEqual(['a', 'x', 'q']);
    const ctx = () => recordingContext({ id: 'norm', inputSchema: closed });
    const early = new NormalizeTransform({ steps: closedSteps }, ctx());
    const late = new NormalizeTransform({ steps: closedSteps }, ctx(), false);
    const validate = ajv.compile(declared(closedSteps, closed));
    const closedRecords = fc.array(fc.dictionary(fc.constantFrom(...names), value), { maxLength: 20 });
    await fc.assert(
      fc.asyncProperty(closedRecords, async (input) => {
        const a = early.process(input as EtlRecord[]);
        const b = late.process(input as EtlRecord[]);
        expect(a.default).toEqual(b.default);
        expect((a.dead_letter ?? []).map((d) => d.reason)).toEqual((b.dead_letter ?? []).map((d) => d.reason));
        for (const record of a.default ?? []) {
          expect(validate(record), JSON.stringify(validate.errors)).toBe(true);
          expect(Object.keys(record)).not.toContain('a');
          expect(Object.keys(record)).not.toContain('q');
        }
      }),
      { numRuns: 200 },
    );
  });
});
