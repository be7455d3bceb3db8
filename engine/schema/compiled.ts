/**
 * The pipeline schema, compiled ahead of time. Compiling it with Ajv takes most of a second, longer than
 * the whole of `etl validate` may take; `npm run schemas` writes the compiled validators as modules (Ajv's
 * standalone code) under compiled/, and the loader imports them instead: one for the envelope (everything but
 * the operators' options) and one per operator, so that a pipeline loads the validators of the operators it
 * uses only (all of them in one module were 1.5 MB: a one-line `etl apply` took 70 ms more CPU, loaded machine).
 * Each module records a digest of the schema it was compiled from (its operator's stage, or the envelope with
 * the resources): a document is checked by the compiled validators when every operator it uses is as it was
 * compiled, else the loader compiles at run time as before, so the answer is never stale, only slower; a test
 * fails until the modules are rewritten.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ErrorObject } from 'ajv';
import type { OperatorDefinition, ResourceDefinition } from '../operator.ts';
import { composePipelineSchema, defKey, stageValidatorSchema } from './compose.ts';
import { STAGE_SECTIONS } from './envelope.ts';

export const COMPILED_DIR = fileURLToPath(new URL('./compiled/', import.meta.url));
/** The module of the envelope's validator, under COMPILED_DIR. */
export const ENVELOPE_MODULE = 'envelope.js';

/** The module of an operator's stage validator, under COMPILED_DIR. */
export function stageModule(def: OperatorDefinition): string {
  return `${defKey(def)}.js`;
}

/** A pipeline document's schema errors (none when it is valid); defaults and coercions are applied to it. */
export type PipelineValidator = (data: unknown) => readonly ErrorObject[];

export function schemaDigest(schema: unknown): string {
  return createHash('sha256').update(JSON.stringify(schema)).digest('hex');
}

/** The digest of what a module was compiled from: an operator's stage schema, or the envelope (no `def`). */
export function moduleDigest(def: OperatorDefinition | undefined, resources: readonly ResourceDefinition[]): string {
  return schemaDigest(def ? stageValidatorSchema(def) : composePipelineSchema([], resources));
}

/** Ajv's standalone validator, as its code calls the validators of the schemas it refers to. */
interface StandaloneValidator {
  (
    data: unknown,
    context?: { instancePath: string; parentData: unknown; parentDataProperty: string; rootData: unknown },
  ): boolean;
  errors?: ErrorObject[] | null;
}
interface CompiledModule {
  readonly digest: string;
  readonly validate: StandaloneValidator;
}

const modules = new Map<string, Promise<CompiledModule | undefined>>();

function importCompiled(name: string): Promise<CompiledModule | undefined> {
  let loaded = modules.get(name);
  if (!loaded) {
    const path = join(COMPILED_DIR, name);
    loaded = existsSync(path)
      ? (import(pathToFileURL(path).href) as Promise<CompiledModule>)
      : Promise.resolve(undefined);
    modules.set(name, loaded);
  }
  return loaded;
}

/**
 * The compiled validator of the pipeline schema for documents that use the operators of `used`, when each of
 * them (and the envelope with `resources`) is as it was compiled from; else undefined.
 */
export async function loadCompiledValidator(
  used: readonly OperatorDefinition[],
  resources: readonly ResourceDefinition[],
): Promise<PipelineValidator | undefined> {
  const unique = [...new Set(used)];
  const [envelope, ...stages] = await Promise.all([
    importCompiled(ENVELOPE_MODULE),
    ...unique.map((def) => importCompiled(stageModule(def))),
  ]);
  if (envelope?.digest !== moduleDigest(undefined, resources)) return undefined;
  const byKey = new Map<string, StandaloneValidator>();
  for (const [i, def] of unique.entries()) {
    const stage = stages[i];
    if (stage?.digest !== moduleDigest(def, resources)) return undefined;
    byKey.set(defKey(def), stage.validate);
  }
  return splitValidator(envelope.validate, byKey);
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** `/` and `~` escaped, as in Ajv's instance paths. */
const pointerSegment = (key: string): string => key.replace(/~/g, '~0').replace(/\//g, '~1');

/**
 * The envelope's validator, then each stage's by its `type`, where the whole schema's discriminator would pick
 * that operator: the same errors at the same instance paths (a stage of a type not in `stages` is one the loader
 * reported as unknown already; the discriminator's complaint about it is not shown either).
 */
function splitValidator(envelope: StandaloneValidator, stages: ReadonlyMap<string, StandaloneValidator>) {
  return (data: unknown): readonly ErrorObject[] => {
    const errors: ErrorObject[] = envelope(data) ? [] : [...(envelope.errors ?? [])];
    const spec = isObject(data) ? data.spec : undefined;
    if (!isObject(spec)) return errors;
    for (const section of STAGE_SECTIONS) {
      const stagesOfSection = spec[section.key];
      if (!isObject(stagesOfSection)) continue;
      for (const [id, stage] of Object.entries(stagesOfSection)) {
        if (!isObject(stage) || typeof stage.type !== 'string') continue;
        const validate = stages.get(`${section.kind}-${stage.type}`);
        const context = {
          instancePath: `/spec/${section.key}/${pointerSegment(id)}`,
          parentData: stagesOfSection,
          parentDataProperty: id,
          rootData: data,
        };
        if (validate && !validate(stage, context)) errors.push(...(validate.errors ?? []));
      }
    }
    return errors;
  };
}
