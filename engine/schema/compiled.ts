/**
 * The pipeline schema, compiled ahead of time. Compiling it with Ajv takes most of a second, longer than
 * the whole of `etl validate` may take; `npm run schemas` writes the compiled validator as a module
 * (Ajv's standalone code), and the loader imports it instead. The module records, for each operator, a digest
 * of the pipeline schema composed with that operator alone (the envelope, the resources and its stage): a
 * document is checked by the compiled validator when every operator it uses is as it was compiled, so only the
 * operators a pipeline uses need loading. An operator changed since (edited without `npm run schemas`) or added
 * makes the loader compile at run time as before, so the answer is never stale, only slower; a test fails until
 * the module is rewritten.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ValidateFunction } from 'ajv';
import type { OperatorDefinition, ResourceDefinition } from '../operator.ts';
import { composePipelineSchema, defKey } from './compose.ts';

export const COMPILED_VALIDATOR_PATH = fileURLToPath(new URL('./compiled/pipeline-validator.js', import.meta.url));

export function schemaDigest(schema: unknown): string {
  return createHash('sha256').update(JSON.stringify(schema)).digest('hex');
}

/**
 * The digest of each operator (by `defKey`): of the pipeline schema composed with it alone; under `''`, the
 * pipeline schema with no operator (the envelope and resources).
 */
export function operatorDigests(
  registry: readonly OperatorDefinition[],
  resources: readonly ResourceDefinition[],
): Record<string, string> {
  const digests: Record<string, string> = { '': schemaDigest(composePipelineSchema([], resources)) };
  for (const def of registry) digests[defKey(def)] = schemaDigest(composePipelineSchema([def], resources));
  return digests;
}

let compiledModule: Promise<CompiledModule | undefined> | undefined;
interface CompiledModule {
  readonly digests: Readonly<Record<string, string>>;
  readonly validate: ValidateFunction;
}

/**
 * The compiled validator when every operator of `used` is as it was compiled from (and the resources too),
 * else undefined.
 */
export async function loadCompiledValidator(
  used: readonly OperatorDefinition[],
  resources: readonly ResourceDefinition[],
): Promise<ValidateFunction | undefined> {
  compiledModule ??= existsSync(COMPILED_VALIDATOR_PATH)
    ? (import(pathToFileURL(COMPILED_VALIDATOR_PATH).href) as Promise<CompiledModule>)
    : Promise.resolve(undefined);
  const mod = await compiledModule;
  if (mod === undefined) return undefined;
  const expected = operatorDigests(used, resources);
  return Object.entries(expected).every(([key, digest]) => mod.digests[key] === digest) ? mod.validate : undefined;
}
