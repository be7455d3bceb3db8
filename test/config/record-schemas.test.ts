/**
 * The record-schema pass: the schema at every port computed before any I/O from what operators declare, the
 * union at fan-in, option values naming fields checked against the schema reaching their stage (at their line
 * and column, with the name meant), and sinks deriving what they write from it.
 */
import { describe, expect, it } from 'vitest';
import { type LoadResult, loadPipelinesFromString } from '../../engine/config/load.ts';
import type { StageSpec } from '../../engine/config/types.ts';
import type { Diagnostic } from '../../engine/diagnostics.ts';
import { defineTransform, type OperatorDefinition } from '../../engine/operator.ts';
import {
  DEAD_LETTER_SCHEMA,
  OPEN_RECORD_SCHEMA,
  RAW_LINE_SCHEMA,
  type RecordSchema,
  typeText,
  unionOf,
  withFields,
} from '../../engine/record-schema.ts';
import { registry } from '../../operators/all.ts';
import { accessRecordSchema, errorLogRecordSchema } from '../../operators/shared/log-records.ts';
import { at, only } from './helpers.ts';

/** Adds `geo_country` and `geo_latitude` to whatever it receives, as an enrichment declares it. */
const geo = defineTransform({
  type: 'test_geo',
  stability: 'alpha',
  summary: 'adds geo fields to each record',
  schema: {
    $id: 'https://etl.dev/schemas/operators/transforms/test_geo.json',
    type: 'object',
    additionalProperties: false,
    properties: {},
  } as const,
  examples: [{}],
  accepts: ['any'],
  outputs: { default: 'any' },
  outputSchemas: (_options, input) => ({
    default: withFields(input, {
      geo_country: { type: ['string', 'null'], description: 'ISO 3166 country code.' },
      geo_latitude: { type: ['number', 'null'], minimum: -90, maximum: 90, description: 'Latitude.' },
    }),
  }),
  create: () => ({ process: (records) => ({ default: records }) }),
});

/** Declares nothing: what it emits is unknown. */
const opaque = defineTransform({
  type: 'test_opaque',
  stability: 'alpha',
  summary: 'emits records of unknown shape',
  schema: {
    $id: 'https://etl.dev/schemas/operators/transforms/test_opaque.json',
    type: 'object',
    additionalProperties: false,
    properties: {},
  } as const,
  examples: [{}],
  accepts: ['any'],
  outputs: { default: 'any' },
  create: () => ({ process: (records) => ({ default: records }) }),
});

/** A pass-through: its output is its input. */
const pass = defineTransform({
  type: 'test_pass',
  stability: 'alpha',
  summary: 'forwards every record unchanged',
  schema: {
    $id: 'https://etl.dev/schemas/operators/transforms/test_pass.json',
    type: 'object',
    additionalProperties: false,
    properties: {},
  } as const,
  examples: [{}],
  accepts: ['any'],
  outputs: { default: 'any' },
  outputSchemas: (_options, input) => ({ default: input }),
  create: () => ({ process: (records) => ({ default: records }) }),
});

const withTestOperators: readonly OperatorDefinition[] = [...registry, geo, opaque, pass] as OperatorDefinition[];

function load(spec: string): Promise<LoadResult> {
  const yaml = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: p }
spec:
${spec}`;
  return loadPipelinesFromString(yaml, 'pipeline.yaml', { registry: withTestOperators, env: {} });
}

function errors(result: LoadResult): Diagnostic[] {
  return result.diagnostics.filter((d) => d.severity === 'error');
}

function stage(result: LoadResult, id: string): StageSpec {
  const found = result.pipelines[0]?.stages.find((s) => s.id === id);
  if (!found) throw new Error(`no stage ${id}: ${JSON.stringify(result.diagnostics, null, 2)}`);
  return found;
}

describe('the record schema at every port', () => {
  it('follows each operator from the source to the sinks', async () => {
    const result = await load(`  sources:
    logs: { type: file, paths: [logs/*.log] }
  operators:
    parsed: { type: parse, inputs: [logs] }
  sinks:
    out: { type: file, inputs: [parsed], path: out.jsonl }
    errors: { type: file, inputs: [parsed.error_log], path: errors.jsonl }
    rejects: { type: file, inputs: [parsed.dead_letter], path: rejects.jsonl }
`);
    expect(errors(result)).toEqual([]);
    expect(stage(result, 'logs').inputSchema).toBeUndefined();
    expect(stage(result, 'logs').outputSchemas).toEqual({ default: RAW_LINE_SCHEMA });
    expect(stage(result, 'parsed').inputSchema).toBe(RAW_LINE_SCHEMA);
    expect(stage(result, 'parsed').outputSchemas).toEqual({
      default: accessRecordSchema,
      error_log: errorLogRecordSchema,
      dead_letter: DEAD_LETTER_SCHEMA,
    });
    expect(stage(result, 'out').inputSchema).toBe(accessRecordSchema);
    expect(stage(result, 'errors').inputSchema).toBe(errorLogRecordSchema);
    expect(stage(result, 'rejects').inputSchema).toBe(DEAD_LETTER_SCHEMA);
    expect(stage(result, 'out').outputSchemas).toEqual({ dead_letter: DEAD_LETTER_SCHEMA });
  });

  it('passes through, adds fields, and knows nothing after a stage that declares nothing', async () => {
    const result = await load(`  sources:
    logs: { type: generator, count: 1 }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
    same: { type: test_pass, inputs: [parsed] }
    located: { type: test_geo, inputs: [same] }
    unknown: { type: test_opaque, inputs: [parsed] }
    located_unknown: { type: test_geo, inputs: [unknown] }
  sinks:
    a: { type: blackhole, inputs: [located] }
    b: { type: blackhole, inputs: [located_unknown] }
`);
    expect(errors(result)).toEqual([]);
    expect(stage(result, 'located').inputSchema).toBe(accessRecordSchema);
    const located = stage(result, 'a').inputSchema as RecordSchema;
    expect(Object.keys(located.properties ?? {})).toEqual([
      ...Object.keys(accessRecordSchema.properties),
      'geo_country',
      'geo_latitude',
    ]);
    expect(located.additionalProperties).toBe(false);
    expect(located.$id).toBeUndefined();
    expect(stage(result, 'located_unknown').inputSchema).toEqual(OPEN_RECORD_SCHEMA);
    const open = stage(result, 'b').inputSchema as RecordSchema;
    expect(Object.keys(open.properties ?? {})).toEqual(['geo_country', 'geo_latitude']);
    expect(open.additionalProperties).toBeUndefined();
  });

  it('unites what several inputs send: a field some lack is optional, types are unioned', async () => {
    const result = await load(`  sources:
    logs: { type: file, paths: [logs/*.log] }
  operators:
    parsed: { type: parse, inputs: [logs] }
  sinks:
    all: { type: file, inputs: [parsed, parsed.error_log], path: all.jsonl }
`);
    expect(errors(result)).toEqual([]);
    const all = stage(result, 'all').inputSchema as RecordSchema;
    expect(all.additionalProperties).toBe(false);
    expect(all.required).toEqual([
      'client_ip',
      'timestamp',
      'timestamp_offset_minutes',
      'request',
      'referrer',
      'raw_base64',
    ]);
    expect(all.properties?.status).toEqual(accessRecordSchema.properties.status);
    expect(all.properties?.level).toEqual(errorLogRecordSchema.properties.level);
    // The same type, descriptions aside: the first input's declaration.
    expect(all.properties?.client_ip).toBe(accessRecordSchema.properties.client_ip);
    expect(all.properties?.message).toBe(errorLogRecordSchema.properties.message);
    // Declarations that differ in more than their types are kept side by side.
    expect(all.properties?.timestamp_offset_minutes).toEqual({
      anyOf: [
        accessRecordSchema.properties.timestamp_offset_minutes,
        errorLogRecordSchema.properties.timestamp_offset_minutes,
      ],
    });
  });
});

describe('option values that name fields', () => {
  const csv = (fields: string, input = 'parsed') => `  sources:
    logs: { type: file, paths: [logs/*.log] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
    unknown: { type: test_opaque, inputs: [parsed] }
  sinks:
    out:
      type: file
      inputs: [${input}]
      path: out.csv
      format: csv
      fields: [${fields}]
`;

  it('are checked against the schema reaching the stage, at their line and column, with the name meant', async () => {
    const result = await load(csv('timestamp, upstream.addr, stauts, x'));
    const found = errors(result);
    expect(found.map((d) => [d.code, ...at(d), d.message])).toEqual([
      ['ETL_GRAPH_UNKNOWN_FIELD', 16, 27, 'unknown field `upstream.addr` — did you mean `upstream_addr`?'],
      ['ETL_GRAPH_UNKNOWN_FIELD', 16, 42, 'unknown field `stauts` — did you mean `status`?'],
      ['ETL_GRAPH_UNKNOWN_FIELD', 16, 50, 'unknown field `x`'],
    ]);
    expect(found[0]?.path).toBe('spec.sinks.out.fields[1]');
    expect(found[0]?.hint).toMatch(/^the records reaching `out` carry: client_ip, ident, user, timestamp, /);
  });

  it('reach into object fields with a dotted path, and are not judged where the schema cannot tell', async () => {
    expect(errors(await load(csv('timestamp, extra.request_id')))).toEqual([]);
    expect(errors(await load(csv('whatever', 'unknown')))).toEqual([]);
  });

  it('are not judged when the input is unknown because of another problem', async () => {
    const result = await load(csv('stauts', 'parsd'));
    expect(errors(result).map((d) => d.code)).toEqual(['ETL_GRAPH_UNKNOWN_INPUT']);
  });

  it('of a postgres sink are its columns: the fields reaching it plus `columns`', async () => {
    const result = await load(`  sources:
    logs: { type: file, paths: [logs/*.log] }
  operators:
    parsed: { type: parse, inputs: [logs] }
    located: { type: test_geo, inputs: [parsed] }
  sinks:
    store:
      type: postgres
      inputs: [located]
      columns: { asn: bigint }
      indexes: [{ columns: [geo_country, asn] }, { columns: [geo_contry] }]
      unique_key: [timestamp, client_ipp]
`);
    const found = errors(result);
    expect(found.map((d) => [d.code, ...at(d), d.message])).toEqual([
      ['ETL_GRAPH_UNKNOWN_FIELD', 15, 62, 'unknown column `geo_contry` — did you mean `geo_country`?'],
      ['ETL_GRAPH_UNKNOWN_FIELD', 16, 31, 'unknown column `client_ipp` — did you mean `client_ip`?'],
    ]);
    // `asn` is a column of its own that no record fills (yet): said, but not refused.
    const warnings = result.diagnostics.filter((d) => d.severity === 'warning');
    expect(warnings.map((d) => [...at(d), d.message])).toEqual([
      [14, 23, 'column `asn` will stay empty: the records reaching the sink have no such field'],
    ]);
  });
});

describe('an operator whose declaration throws', () => {
  it('is reported at its stage, and what follows it is unknown', async () => {
    const broken = defineTransform({
      ...pass,
      type: 'test_broken',
      schema: { ...pass.schema, $id: 'https://etl.dev/schemas/operators/transforms/test_broken.json' },
      outputSchemas: () => {
        throw new Error('no schema today');
      },
    });
    const result = await loadPipelinesFromString(
      `apiVersion: etl/v1
kind: Pipeline
metadata: { name: p }
spec:
  sources:
    logs: { type: generator, count: 1 }
  operators:
    b: { type: test_broken, inputs: [logs] }
  sinks:
    out: { type: file, inputs: [b], path: out.csv, format: csv, fields: [nothing] }
`,
      'pipeline.yaml',
      { registry: [...registry, broken] as OperatorDefinition[], env: {} },
    );
    const d = only(result, 'ETL_CFG_INVALID');
    expect(at(d)).toEqual([8, 5]);
    expect(d.message).toBe(
      'the `test_broken` transform could not derive its record schemas from its options: Error: no schema today',
    );
    expect(errors(result)).toHaveLength(1);
  });
});

describe('record schema helpers', () => {
  const a: RecordSchema = {
    type: 'object',
    additionalProperties: false,
    required: ['n', 'both'],
    properties: { n: { type: 'integer' }, both: { type: 'string' }, only_a: { type: 'boolean' } },
  };
  const b: RecordSchema = {
    type: 'object',
    additionalProperties: false,
    required: ['n', 'both'],
    properties: { n: { type: ['string', 'null'] }, both: { type: 'string', description: 'the same' } },
  };

  it('unites types, makes fields some inputs lack optional, and stays closed only if every input is', () => {
    expect(unionOf([a, b])).toEqual({
      type: 'object',
      additionalProperties: false,
      required: ['n', 'both'],
      properties: { n: { type: ['integer', 'string', 'null'] }, both: { type: 'string' }, only_a: { type: 'boolean' } },
    });
    // An open input may carry `only_a` with any type.
    expect(unionOf([a, { type: 'object', properties: {} }]).properties?.only_a).toEqual({});
    expect(unionOf([a, OPEN_RECORD_SCHEMA]).additionalProperties).toBeUndefined();
    expect(unionOf([a, a])).toBe(a);
  });

  it('adds fields, replacing one of the same name', () => {
    const added = withFields(a, { n: { type: 'number' }, c: { type: 'string' } }, ['c']);
    expect(added.properties).toEqual({
      n: { type: 'number' },
      both: { type: 'string' },
      only_a: { type: 'boolean' },
      c: { type: 'string' },
    });
    expect(added.required).toEqual(['both', 'c']);
  });

  it('says a type in a few words', () => {
    expect(typeText({ type: ['string', 'null'], format: 'date-time' })).toBe('string (date-time) | null');
    expect(typeText({ type: ['array', 'null'], items: { type: 'string' } })).toBe('string[] | null');
    expect(typeText({ type: 'array', items: { type: ['string', 'null'] } })).toBe('(string | null)[]');
    expect(typeText({ enum: ['apache', 'nginx'] })).toBe('"apache" | "nginx"');
    expect(typeText({ anyOf: [{ type: 'integer' }, { type: 'string' }] })).toBe('integer | string');
    expect(typeText({})).toBe('any');
  });
});
