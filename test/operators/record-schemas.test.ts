/**
 * Every operator that declares what it emits (`outputSchemas`) is held to it: run on generated and sample input,
 * each record it emits on a port validates against the schema it declared for that port, given its options and
 * the schema of its input. The generic part is here: running a source or a transform and checking what comes
 * out. Each declaring operator needs a case below (what input to give it); a test fails until it has one.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { ValidateFunction } from 'ajv';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { DEAD_LETTER_PORT, outputPorts } from '../../engine/graph/graph.ts';
import type {
  OperatorContext,
  OperatorDefinition,
  PortRecords,
  Source,
  SourceContext,
  SourceDefinition,
  TransformDefinition,
} from '../../engine/operator.ts';
import type { EtlRecord } from '../../engine/record.ts';
import {
  DEAD_LETTER_SCHEMA,
  OPEN_RECORD_SCHEMA,
  RAW_LINE_SCHEMA,
  type RecordSchema,
} from '../../engine/record-schema.ts';
import { detachedState, noopMetrics, silentLogger } from '../../engine/runtime/noop.ts';
import { createAjv, createRecordAjv } from '../../engine/schema/ajv.ts';
import { stage } from '../support/spec.ts';
import { registry } from '../../operators/registry.ts';
import { accessRecordSchema } from '../../operators/shared/log-records.ts';
import { createStdinSource } from '../../operators/sources/stdin/stdin.ts';

// ------------------------------------------------------------------------------------------ generic part

interface Case {
  /** The operator's options, defaults applied. */
  readonly options: Record<string, unknown>;
  /** For transforms: the schema of the records reaching the stage, and records of that schema. */
  readonly input?: { readonly schema: RecordSchema; readonly records: readonly EtlRecord[] };
  /** For a source whose `create` would reach outside the test (standard input). */
  readonly create?: (options: Record<string, unknown>, ctx: SourceContext) => Source;
}

/** Generated values, and how to turn one into a case (writing files to `dir` if need be). */
interface CaseMaker<T> {
  readonly values: fc.Arbitrary<T>;
  readonly make: (value: T, dir: string) => Case;
  readonly runs: number;
}

const ajv = createRecordAjv();
const validators = new WeakMap<RecordSchema, ValidateFunction>();
function validatorOf(schema: RecordSchema): ValidateFunction {
  let validate = validators.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    validators.set(schema, validate);
  }
  return validate;
}

const scratch = mkdtempSync(join(tmpdir(), 'etl-record-schemas-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function context(def: OperatorDefinition, options: Record<string, unknown>, input?: RecordSchema): OperatorContext {
  const ports = Object.keys(outputPorts(stage({ id: 'stage', def, options })));
  return {
    pipeline: 'record-schemas',
    id: 'stage',
    logger: silentLogger,
    signal: new AbortController().signal,
    dataDir: scratch,
    baseDir: scratch,
    metrics: noopMetrics,
    requestCheckpoint: () => {},
    readPorts: new Set(ports),
    ...detachedState,
    ...(input === undefined ? {} : { inputSchema: input }),
  };
}

/** What a source emits until it ends; sources emit on their default port. */
async function runSource(def: SourceDefinition, c: Case): Promise<PortRecords> {
  const ctx: SourceContext = { ...context(def, c.options), restoredPosition: undefined, batchMaxRecords: 64 };
  const source = await (c.create ? c.create(c.options, ctx) : def.create(c.options, ctx));
  const records: EtlRecord[] = [];
  try {
    await source.run({
      emit: async (batch) => {
        records.push(...batch);
        return { sent: true, durable: () => Promise.resolve() };
      },
      stopping: new AbortController().signal,
      progress: () => {},
      onCommitted: () => {},
      inputError: (reason) => {
        throw new Error(`input error: ${reason}`);
      },
    });
  } finally {
    await source.close?.();
  }
  return { default: records };
}

/** What a transform emits on each port for the input records, in batches, then at flush. */
async function runTransform(def: TransformDefinition, c: Case): Promise<PortRecords> {
  const input = c.input ?? { schema: OPEN_RECORD_SCHEMA, records: [] };
  const transform = await def.create(c.options, context(def, c.options, input.schema));
  const out: PortRecords = {};
  const add = (ports: PortRecords) => {
    for (const [port, records] of Object.entries(ports)) out[port] = [...(out[port] ?? []), ...records];
  };
  try {
    await transform.open?.();
    for (let i = 0; i < input.records.length; i += 16) add(await transform.process(input.records.slice(i, i + 16)));
    if (transform.flush) add(await transform.flush());
  } finally {
    await transform.close?.();
  }
  return out;
}

/** Checks every emitted record against the schema declared for its port; returns how many were checked. */
async function holdsToDeclaration(def: OperatorDefinition, c: Case): Promise<number> {
  const declared =
    def.kind === 'source'
      ? (def.outputSchemas?.(c.options) ?? {})
      : def.kind === 'transform'
        ? (def.outputSchemas?.(c.options, c.input?.schema ?? OPEN_RECORD_SCHEMA) ?? {})
        : {};
  const ports = outputPorts(stage({ id: 'stage', def, options: c.options }));
  const emitted = def.kind === 'source' ? await runSource(def, c) : await runTransform(def as TransformDefinition, c);
  let checked = 0;
  for (const [port, records] of Object.entries(emitted)) {
    expect(Object.keys(ports), `${def.type} emits on port ${port}, which it does not declare`).toContain(port);
    const schema = port === DEAD_LETTER_PORT ? DEAD_LETTER_SCHEMA : (declared[port] ?? OPEN_RECORD_SCHEMA);
    const validate = validatorOf(schema);
    for (const record of records) {
      const valid = validate(record);
      expect(valid, `${def.type} on ${port}: ${JSON.stringify(validate.errors)} for ${JSON.stringify(record)}`).toBe(
        true,
      );
      checked++;
    }
  }
  return checked;
}

function withDefaults(def: OperatorDefinition, options: Record<string, unknown>): Record<string, unknown> {
  const copy = structuredClone(options);
  const validate = createAjv().compile(def.schema);
  if (!validate(copy)) throw new Error(`bad options for ${def.type}: ${JSON.stringify(validate.errors)}`);
  return copy;
}

function definition(kind: OperatorDefinition['kind'], type: string): OperatorDefinition {
  const def = registry.find((d) => d.kind === kind && d.type === type);
  if (!def) throw new Error(`no ${kind} ${type}`);
  return def;
}

// ---------------------------------------------------------------------------------------- the cases

const parseTestdata = fileURLToPath(new URL('../../operators/transforms/parse/testdata/', import.meta.url));
const sampleLines = [
  ...readdirSync(join(parseTestdata, 'corpus'))
    .filter((f) => f.endsWith('.log'))
    .map((f) => `corpus/${f}`),
  ...readdirSync(join(parseTestdata, 'mixed')).map((f) => `mixed/${f}`),
  ...readdirSync(parseTestdata).filter((f) => f.endsWith('.log')),
].flatMap((file) =>
  readFileSync(join(parseTestdata, file), 'utf8')
    .split('\n')
    .filter((l) => l !== ''),
);

/** A real line with random edits, or any text: what a log file may hold. */
const line = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...sampleLines) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom(...sampleLines), fc.nat(), fc.nat({ max: 4 }), fc.string({ maxLength: 4 }))
      .map(([l, at, cut, insert]) => {
        const i = at % (l.length + 1);
        return l.slice(0, i) + insert + l.slice(i + cut);
      }),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }).map((s) => s.replace(/[\r\n]/g, ' ')) },
);

const rawLines = fc.array(
  fc
    .tuple(line, fc.boolean())
    .map(([message, truncated]): EtlRecord => (truncated ? { message, truncated } : { message })),
  { minLength: 1, maxLength: 60 },
);

/** Erases the value type: each maker only ever gets its own values. */
function maker<T>(m: CaseMaker<T>): CaseMaker<unknown> {
  return m as unknown as CaseMaker<unknown>;
}

const cases: Record<string, CaseMaker<unknown>> = {
  'source generator': maker({
    values: fc.record({
      format: fc.constantFrom(
        'apache_common',
        'apache_combined',
        'nginx_combined',
        'nginx_combined_request_time',
        'nginx_json',
      ),
      count: fc.integer({ min: 0, max: 300 }),
      seed: fc.integer({ min: 0, max: 1_000_000 }),
      malformed_ratio: fc.double({ min: 0, max: 1, noNaN: true }),
      with_sequence: fc.boolean(),
    }),
    make: (value: Record<string, unknown>) => ({
      options: withDefaults(definition('source', 'generator'), { ...value, start_time: '2026-01-01T00:00:00Z' }),
    }),
    runs: 40,
  }),
  'source file': maker({
    values: fc.record({
      lines: fc.array(line, { maxLength: 40 }),
      crlf: fc.boolean(),
      gzip: fc.boolean(),
      final_newline: fc.boolean(),
      max_line_bytes: fc.integer({ min: 16, max: 300 }),
    }),
    make: (
      value: { lines: string[]; crlf: boolean; gzip: boolean; final_newline: boolean; max_line_bytes: number },
      dir,
    ) => {
      const text = value.lines.join(value.crlf ? '\r\n' : '\n') + (value.final_newline ? '\n' : '');
      const file = join(dir, value.gzip ? 'access.log.gz' : 'access.log');
      writeFileSync(file, value.gzip ? gzipSync(text) : text);
      return {
        options: withDefaults(definition('source', 'file'), {
          paths: [join(dir, '*.log*')],
          max_line_bytes: value.max_line_bytes,
        }),
      };
    },
    runs: 25,
  }),
  'source stdin': maker({
    values: fc.record({
      text: fc.array(line, { maxLength: 40 }).map((lines) => lines.join('\n')),
      max_line_bytes: fc.integer({ min: 16, max: 300 }),
    }),
    make: (value: { text: string; max_line_bytes: number }) => ({
      options: withDefaults(definition('source', 'stdin'), { max_line_bytes: value.max_line_bytes }),
      create: (options, ctx) => createStdinSource(options as never, ctx, Readable.from([Buffer.from(value.text)])),
    }),
    runs: 25,
  }),
  'transform parse': maker({
    values: fc.record({
      options: fc.constantFrom(...(definition('transform', 'parse').examples as Record<string, unknown>[])),
      records: rawLines,
    }),
    make: (value: { options: Record<string, unknown>; records: EtlRecord[] }) => ({
      options: structuredClone(value.options),
      input: { schema: RAW_LINE_SCHEMA, records: value.records },
    }),
    runs: 150,
  }),
  'transform aggregate': maker({
    values: fc.record({
      options: fc.constantFrom(...(definition('transform', 'aggregate').examples as Record<string, unknown>[])),
      records: fc.array(
        fc.record({
          timestamp: fc
            .integer({ min: 0, max: 7200_000 })
            .map((ms) => new Date(Date.UTC(2026, 0, 1) + ms).toISOString()),
          path: fc.option(fc.constantFrom('/', '/a', '/b?x=1'), { nil: null }),
          vhost: fc.option(fc.constantFrom('example.org', 'shop.example.org'), { nil: null }),
          status: fc.option(fc.integer({ min: 100, max: 599 }), { nil: null }),
          bytes: fc.option(fc.integer({ min: 0, max: 1e9 }), { nil: null }),
          request_time_ms: fc.option(fc.double({ min: 0, max: 1e6, noNaN: true }), { nil: null }),
        }),
        { minLength: 1, maxLength: 60 },
      ),
    }),
    make: (value: { options: Record<string, unknown>; records: EtlRecord[] }) => ({
      options: structuredClone(value.options),
      input: { schema: accessRecordSchema, records: value.records },
    }),
    runs: 60,
  }),
};

const declaring = registry.filter((def) => def.kind !== 'sink' && def.outputSchemas !== undefined);

describe('declared record schemas', () => {
  it('every operator that declares its output has a case here, and every case an operator', () => {
    expect(Object.keys(cases).sort()).toEqual(declaring.map((def) => `${def.kind} ${def.type}`).sort());
  });

  it.each(declaring.map((def) => [`${def.kind} ${def.type}`, def] as const))(
    '%s: declares schemas for its own ports only, flat and valid JSON Schema, for every example',
    (_name, def) => {
      for (const example of def.examples) {
        const options = structuredClone(example) as Record<string, unknown>;
        const ports = Object.keys(outputPorts(stage({ id: 'stage', def, options })));
        const declared =
          def.kind === 'source'
            ? def.outputSchemas?.(options)
            : (def as TransformDefinition).outputSchemas?.(options, OPEN_RECORD_SCHEMA);
        for (const [port, schema] of Object.entries(declared ?? {})) {
          expect(ports).toContain(port);
          expect(port).not.toBe(DEAD_LETTER_PORT);
          expect(() => validatorOf(schema)).not.toThrow();
          // Records are flat (engine/record-schema.ts): an object field is a bag of open-ended keys.
          for (const [name, field] of Object.entries(schema.properties ?? {})) {
            expect(field.properties, `${def.type}.${port}.${name} nests declared fields`).toBeUndefined();
          }
        }
      }
    },
  );

  it.each(Object.entries(cases))('%s emits only records of the schemas it declares', async (name, maker) => {
    const [kind, type] = name.split(' ') as [OperatorDefinition['kind'], string];
    const def = definition(kind, type);
    let checked = 0;
    await fc.assert(
      fc.asyncProperty(maker.values, async (value) => {
        const caseDir = mkdtempSync(join(scratch, 'case-'));
        try {
          checked += await holdsToDeclaration(def, maker.make(value, caseDir));
        } finally {
          rmSync(caseDir, { recursive: true, force: true });
        }
      }),
      { numRuns: maker.runs },
    );
    expect(checked, 'records checked').toBeGreaterThan(maker.runs);
  });
});
