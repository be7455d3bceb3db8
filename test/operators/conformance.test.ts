/**
 * One suite over every registered operator (as the OpenTelemetry Collector does for its components):
 * the schema compiles in strict mode, every example validates and builds, an instance closes without
 * having been opened, every operator folder is registered and has its documentation and tests, and every source and
 * transform is covered by the record ownership checks (`changesRecords`, `sharesRecords`).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { OperatorContext, SinkDefinition, SourceDefinition, TransformDefinition } from '../../engine/operator.ts';
import { noopMetrics, silentLogger, detachedState } from '../../engine/runtime/noop.ts';
import { createAjv } from '../../engine/schema/ajv.ts';
import { resourceSchema } from '../../engine/schema/compose.ts';
import { registry, resources } from '../../operators/all.ts';

const operatorsDir = fileURLToPath(new URL('../../operators/', import.meta.url));
const folderOf = { source: 'sources', transform: 'transforms', sink: 'sinks' } as const;

const context = (id: string): OperatorContext => ({
  pipeline: 'conformance',
  id,
  logger: silentLogger,
  signal: new AbortController().signal,
  dataDir: join(fileURLToPath(new URL('.', import.meta.url)), '.never-created'),
  baseDir: process.cwd(),
  metrics: noopMetrics,
  requestCheckpoint: () => {},
  readPorts: new Set(['default', 'dead_letter', 'error_log']),
  ...detachedState,
});

describe.each(registry.map((def) => [`${def.kind} ${def.type}`, def] as const))('%s', (_name, def) => {
  it('has a strict, documented options schema', () => {
    const ajv = createAjv();
    expect(() => ajv.compile(def.schema)).not.toThrow();
    expect(def.schema.$id).toBe(`https://etl.dev/schemas/operators/${folderOf[def.kind]}/${def.type}.json`);
    expect(def.schema.additionalProperties).toBe(false);
    const properties = (def.schema.properties ?? {}) as Record<string, { description?: string }>;
    for (const [key, property] of Object.entries(properties)) {
      expect(property.description, `${def.type}.${key} has no description`).toBeTruthy();
      expect(key, `${def.type}.${key} is not snake_case`).toMatch(/^[a-z][a-z0-9_]*$/);
    }
    expect(def.summary.length).toBeGreaterThan(10);
    expect(def.examples.length).toBeGreaterThan(0);
  });

  it('builds every example and closes without being opened', async () => {
    const validate = createAjv().compile(def.schema);
    for (const example of def.examples) {
      const options = structuredClone(example) as Record<string, unknown>;
      expect(validate(options), JSON.stringify(validate.errors)).toBe(true);
      expect(def.validate?.(options, { inputSchema: undefined }).filter((p) => p.severity !== 'warning') ?? []).toEqual(
        [],
      );
      const ctx = context(def.type);
      const instance = await (def.kind === 'source'
        ? (def as SourceDefinition).create(options, { ...ctx, restoredPosition: undefined, batchMaxRecords: 16 })
        : def.kind === 'transform'
          ? (def as TransformDefinition).create(options, ctx)
          : (def as SinkDefinition).create(options, ctx));
      await instance.close?.();
      await instance.close?.();
    }
  });

  const transform = def.kind === 'transform' ? (def as TransformDefinition) : undefined;
  it.runIf(transform?.stateless === true || transform?.statelessFor !== undefined)(
    'keeps no state as it declares: builds every example it calls stateless without keyed state, resources or checkpoints',
    async () => {
      const { assertNoStatefulMethods, statelessContext } = await import('../../engine/runtime/workers/stateless.ts');
      const t = transform as TransformDefinition;
      const examples = def.examples.filter((o) => t.statelessFor?.(o) ?? t.stateless === true);
      expect(examples.length).toBeGreaterThan(0);
      for (const options of examples) {
        const instance = await t.create(structuredClone(options), {
          ...context(def.type),
          ...statelessContext(def.type),
        });
        expect(() => assertNoStatefulMethods(def.type, instance)).not.toThrow();
        await instance.close?.();
      }
    },
  );

  it.runIf(def.kind !== 'sink')('is held to its record ownership promises', () => {
    // test/operators/record-schemas.test.ts runs every operator declaring `outputSchemas` on generated input and checks
    // there that no object is emitted twice without `sharesRecords`, that only a `changesRecords` transform changes
    // its input, and that such a transform given its own output again emits it unchanged.
    const d = def as SourceDefinition | TransformDefinition;
    expect(typeof d.outputSchemas, `${def.type} declares no outputSchemas, so its ownership is never checked`).toBe(
      'function',
    );
    expect(['undefined', 'boolean']).toContain(typeof d.sharesRecords);
    if (def.kind === 'transform') {
      const t = def as TransformDefinition;
      expect(['undefined', 'boolean']).toContain(typeof t.changesRecords);
      for (const example of def.examples) {
        expect(['undefined', 'boolean']).toContain(typeof t.changesRecordsFor?.(structuredClone(example)));
      }
    }
  });

  it('lives in its own folder with schema, definition, README and tests', () => {
    const folder = join(operatorsDir, folderOf[def.kind], def.type);
    for (const file of ['schema.ts', 'index.ts', 'README.md']) expect(existsSync(join(folder, file)), file).toBe(true);
    expect(readdirSync(folder).some((f) => f.endsWith('.test.ts'))).toBe(true);
  });
});

describe.each(resources.map((def) => [`resource ${def.type}`, def] as const))('%s', (_name, def) => {
  it('has a strict, documented options schema whose examples validate', () => {
    const validate = createAjv().compile(resourceSchema(def));
    expect(def.examples.length).toBeGreaterThan(0);
    for (const example of def.examples) {
      const options = { type: def.type, ...structuredClone(example as object) };
      expect(validate(options), JSON.stringify(validate.errors)).toBe(true);
    }
    const properties = (def.schema as { properties?: Record<string, { description?: string }> }).properties ?? {};
    for (const [key, property] of Object.entries(properties)) expect(property.description, key).toBeTruthy();
  });

  it('lives in its own folder with schema, definition, README and tests', () => {
    const folder = join(operatorsDir, 'resources', def.type);
    for (const file of ['schema.ts', 'index.ts', 'README.md']) expect(existsSync(join(folder, file)), file).toBe(true);
    expect(readdirSync(folder).some((f) => f.endsWith('.test.ts'))).toBe(true);
  });
});

describe('registry', () => {
  it('registers every resource folder, once', () => {
    const registered = resources.map((def) => def.type).sort();
    expect(new Set(registered).size).toBe(registered.length);
    const folders = readdirSync(join(operatorsDir, 'resources'), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name)
      .sort();
    expect(registered).toEqual(folders);
  });

  it('registers every operator folder, once', () => {
    const registered = registry.map((def) => `${folderOf[def.kind]}/${def.type}`);
    expect(new Set(registered).size).toBe(registered.length);
    const folders = Object.values(folderOf).flatMap((kind) =>
      readdirSync(join(operatorsDir, kind), { withFileTypes: true })
        .filter((entry) => entry.isDirectory())
        .map((entry) => `${kind}/${entry.name}`),
    );
    expect(registered.sort()).toEqual(folders.sort());
  });
});
