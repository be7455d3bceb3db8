/** The published schemas: fresh, strict-valid, and describing every operator's examples. */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { ErrorObject } from 'ajv';
import { loadPipelinesFromString } from '../../engine/config/load.ts';
import { translateAjvErrors } from '../../engine/config/schema-errors.ts';
import { defineSource, defineTransform, type OperatorDefinition } from '../../engine/operator.ts';
import { createAjv } from '../../engine/schema/ajv.ts';
import { composePipelineSchema, operatorStageSchema } from '../../engine/schema/compose.ts';
import { COMPILED_DIR, loadCompiledValidator } from '../../engine/schema/compiled.ts';
import {
  listSchemaFiles,
  loadRecordSchema,
  renderCompiledValidators,
  renderSchemas,
  SCHEMAS_DIR,
} from '../../engine/schema/generate.ts';
import { registry, resources } from '../../operators/all.ts';
import { only, VALID } from './helpers.ts';
import { testRegistry } from './operators.ts';

const never = (): never => {
  throw new Error('not meant to run');
};

describe('published schemas', () => {
  it('are up to date with the registry (run `npm run schemas` when this fails)', async () => {
    const expected = renderSchemas(registry, await loadRecordSchema(), resources);
    const onDisk = await listSchemaFiles();
    expect(onDisk, 'files under schemas/ differ from the registry: run `npm run schemas`').toEqual(
      [...expected.keys()].sort(),
    );
    for (const [path, content] of expected) {
      const actual = await readFile(join(SCHEMAS_DIR, path), 'utf8');
      expect(actual, `schemas/${path} is stale: run \`npm run schemas\``).toBe(content);
    }
  });

  it('the compiled pipeline validators are up to date (run `npm run schemas` when this fails)', async () => {
    const expected = renderCompiledValidators(registry, resources);
    expect((await readdir(COMPILED_DIR)).sort(), 'stale: run `npm run schemas`').toEqual([...expected.keys()].sort());
    for (const [name, content] of expected) {
      const actual = await readFile(join(COMPILED_DIR, name), 'utf8');
      expect(actual === content, `${name} is stale: run \`npm run schemas\``).toBe(true);
    }
    expect(await loadCompiledValidator(registry, resources)).toBeTypeOf('function');
    // Only the operators a pipeline uses are loaded and compared: any subset of those compiled will do.
    expect(await loadCompiledValidator(registry.slice(1, 3), resources)).toBeTypeOf('function');
    // An operator changed since, or one it was not compiled with, is refused: the loader then compiles at run time.
    const first = registry[0] as OperatorDefinition;
    const changed = { ...first, schema: { ...first.schema, maxProperties: 99 } };
    expect(await loadCompiledValidator([changed, ...registry.slice(1)], resources)).toBeUndefined();
    const added = { ...first, type: 'added_since' };
    expect(await loadCompiledValidator([added], resources)).toBeUndefined();
    expect(await loadCompiledValidator(registry, [])).toBeUndefined();
  });

  it('the compiled validators declare their functions to be compiled with the module, and answer as Ajv does', async () => {
    for (const [name, source] of renderCompiledValidators(registry, resources)) {
      const declared = [...source.matchAll(/function (validate\d+)\(/g)].map((m) => m[1]);
      expect(declared.length, name).toBeGreaterThan(0);
      // Each a parenthesised function expression: V8 compiles those eagerly, so the compile cache holds them.
      for (const fn of declared) expect(source, name).toContain(`const ${fn} = (function ${fn}(`);
    }
    const compiled = await loadCompiledValidator(registry, resources);
    const live = createAjv().compile(composePipelineSchema(registry, resources));
    const documents = [
      parse(VALID),
      parse(VALID.replace('      path: out.jsonl', '      path: out.jsonl\n      format: jsnl')),
      parse(VALID.replace('paths: [logs/*.log]', 'pahts: [logs/*.log]')),
      parse(VALID.replace('paths: [logs/*.log]', 'paths: 3\n      bogus: 1')),
      parse(VALID.replace('  name: web', '  name: [7]\n  extra: 1')),
      { apiVersion: 'etl/v1', kind: 'Pipeline' },
      {
        apiVersion: 'etl/v1',
        kind: 'Pipeline',
        metadata: { name: 'x' },
        spec: { sources: { 'a/b~c': { type: 'file' } } },
      },
    ];
    // The envelope's errors come first, then each stage's: the same errors in another order, and the same
    // problems told (an error at the root names the envelope as its parent schema: the same properties).
    const sorted = (items: readonly object[]) => items.map((item) => JSON.stringify(item)).sort();
    const bare = (errors: readonly ErrorObject[]) => errors.map(({ schema: _s, parentSchema: _p, ...rest }) => rest);
    for (const document of documents) {
      const [split, whole] = [structuredClone(document), structuredClone(document)];
      const errors = compiled?.(split) ?? [];
      const valid = live(whole);
      expect(errors.length === 0).toBe(valid);
      expect(split).toEqual(whole);
      expect(sorted(bare(errors))).toEqual(sorted(bare(live.errors ?? [])));
      expect(sorted(translateAjvErrors(errors, split))).toEqual(sorted(translateAjvErrors(live.errors ?? [], whole)));
    }
  });

  it('every schema file compiles in Ajv strict mode', async () => {
    const files = await listSchemaFiles();
    expect(files).toContain('pipeline.schema.json');
    for (const path of files) {
      const schema = JSON.parse(await readFile(join(SCHEMAS_DIR, path), 'utf8')) as object;
      expect(() => createAjv().compile(schema), path).not.toThrow();
    }
  });

  it("every registered operator's examples validate against its stage schema", () => {
    expect(registry.length).toBeGreaterThan(0);
    for (const def of registry) {
      expect(def.examples.length, `${def.kind} ${def.type} has no examples`).toBeGreaterThan(0);
      const validate = createAjv().compile(operatorStageSchema(def));
      for (const example of def.examples) {
        const stage = {
          type: def.type,
          ...(def.kind === 'source' ? {} : { inputs: ['upstream'] }),
          ...structuredClone(example as object),
        };
        const valid = validate(stage);
        expect(validate.errors ?? [], `${def.kind} ${def.type} example ${JSON.stringify(example)}`).toEqual([]);
        expect(valid).toBe(true);
      }
    }
  });
});

describe('composePipelineSchema', () => {
  it('holds every operator under $defs, each closed and with the common stage keys', () => {
    const schema = composePipelineSchema(testRegistry) as { $defs: Record<string, Record<string, unknown>> };
    expect(Object.keys(schema.$defs).sort()).toEqual([
      'resource',
      'sink',
      'sink-file',
      'sink-table',
      'source',
      'source-file',
      'source-generator',
      'source-stdin',
      'transform',
      'transform-geo',
      'transform-parse',
    ]);
    const parse = schema.$defs['transform-parse'] as {
      properties: object;
      additionalProperties: unknown;
      $id?: string;
    };
    expect(Object.keys(parse.properties)).toEqual([
      'type',
      'inputs',
      'on_error',
      'retry',
      'max_in_flight',
      'workers',
      'format',
    ]);
    expect(parse.additionalProperties).toBe(false);
    // Embedded definitions carry no $id: the pipeline schema is one self-contained document.
    expect(parse.$id).toBeUndefined();
    expect(schema.$defs.source).toMatchObject({
      discriminator: { propertyName: 'type' },
      oneOf: [{ $ref: '#/$defs/source-file' }, { $ref: '#/$defs/source-generator' }, { $ref: '#/$defs/source-stdin' }],
    });
    expect(() => createAjv().compile(schema)).not.toThrow();
  });

  it('re-roots the local $refs of an operator schema', async () => {
    const withDefs = defineTransform({
      type: 'tag',
      stability: 'alpha',
      summary: 'adds tags',
      schema: {
        $id: 'https://etl.dev/schemas/operators/transforms/tag.json',
        type: 'object',
        additionalProperties: false,
        properties: {
          tags: { type: 'array', description: 'tags', items: { $ref: '#/$defs/tag' } },
          default: { $ref: 'https://etl.dev/schemas/operators/transforms/tag.json#/$defs/tag' },
        },
        $defs: { tag: { type: 'string', description: 'a tag', minLength: 1 } },
      } as const,
      examples: [{ tags: ['a'] }],
      accepts: ['any'],
      outputs: { default: 'any' },
      create: never,
    }) as OperatorDefinition;
    const reg = [...testRegistry, withDefs];
    const schema = composePipelineSchema(reg) as { $defs: Record<string, { properties: Record<string, unknown> }> };
    expect(schema.$defs['transform-tag']?.properties.tags).toEqual({
      type: 'array',
      description: 'tags',
      items: { $ref: '#/$defs/transform-tag/$defs/tag' },
    });
    expect(schema.$defs['transform-tag']?.properties.default).toEqual({ $ref: '#/$defs/transform-tag/$defs/tag' });
    const result = await loadWith(
      reg,
      VALID.replace('      inputs: [parsed]', '      inputs: [parsed, tagged]').replace(
        '  sinks:',
        '    tagged:\n      type: tag\n      inputs: [parsed]\n      tags: [""]\n  sinks:',
      ),
    );
    expect(only(result, 'ETL_CFG_INVALID').message).toBe('`tags[0]` must not be empty');
  });

  it('refuses an operator schema that declares a common stage key', () => {
    const bad = defineSource({
      type: 'bad',
      stability: 'alpha',
      summary: 'declares inputs',
      schema: {
        $id: 'https://etl.dev/schemas/operators/sources/bad.json',
        type: 'object',
        additionalProperties: false,
        properties: { retry: { type: 'boolean', description: 'clashes' } },
      } as const,
      examples: [],
      outputs: { default: 'raw' },
      create: never,
    }) as OperatorDefinition;
    expect(() => operatorStageSchema(bad)).toThrow('must not declare the common stage key `retry`');
  });

  it('still validates pipelines when a kind has no operator at all', async () => {
    const result = await loadWith(
      testRegistry.filter((d) => d.kind !== 'transform'),
      VALID,
    );
    const d = only(result, 'ETL_CFG_UNKNOWN_TYPE');
    expect(d.message).toBe('unknown transform type `parse`; no transform types are registered');
  });
});

function loadWith(reg: readonly OperatorDefinition[], yaml: string) {
  return loadPipelinesFromString(yaml, 'pipeline.yaml', { registry: reg, env: {} });
}
