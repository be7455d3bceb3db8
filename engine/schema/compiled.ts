/**
 * The pipeline schema, compiled ahead of time. Compiling it with Ajv takes most of a second, longer than
 * the whole of `etl validate` may take; `npm run schemas` writes the compiled validator as a module
 * (Ajv's standalone code), and the loader imports it instead. The module records a digest of the schema it
 * was compiled from: a schema changed since (an operator edited without `npm run schemas`) is compiled at
 * run time as before, so the answer is never stale, only slower; a test fails until the module is rewritten.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ValidateFunction } from 'ajv';

export const COMPILED_VALIDATOR_PATH = fileURLToPath(new URL('./compiled/pipeline-validator.js', import.meta.url));

export function schemaDigest(schema: unknown): string {
  return createHash('sha256').update(JSON.stringify(schema)).digest('hex');
}

/** The compiled validator when it was compiled from this very schema, else undefined. */
export async function loadCompiledValidator(schema: unknown): Promise<ValidateFunction | undefined> {
  if (!existsSync(COMPILED_VALIDATOR_PATH)) return undefined;
  const mod = (await import(pathToFileURL(COMPILED_VALIDATOR_PATH).href)) as {
    digest: string;
    validate: ValidateFunction;
  };
  return mod.digest === schemaDigest(schema) ? mod.validate : undefined;
}
