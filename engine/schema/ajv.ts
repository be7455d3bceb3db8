/**
 * The one Ajv configuration used to validate pipelines and to check our schemas: strict (unknown keywords
 * and ambiguous schemas are programmer errors), every error collected, defaults inserted, and strings
 * coerced where the schema asks for a number or boolean (`${PORT}` interpolates to the string "5432").
 */
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';

// ajv-formats is CommonJS; depending on the loader the default import is the plugin or its module object.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (
  ajv: Ajv,
) => Ajv;

export function createAjv(): Ajv {
  const ajv = new Ajv({
    strict: true,
    allErrors: true,
    useDefaults: true,
    coerceTypes: true,
    discriminator: true,
    // Errors carry the offending value and the schema that refused it, for plain-language messages.
    verbose: true,
    allowUnionTypes: true,
  });
  addFormats(ajv);
  return ajv;
}
