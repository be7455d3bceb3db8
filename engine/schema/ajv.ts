/**
 * The one Ajv configuration used to validate pipelines and to check our schemas: strict (unknown keywords
 * and ambiguous schemas are programmer errors), every error collected, defaults inserted, and strings
 * coerced where the schema asks for a number or boolean (`${PORT}` interpolates to the string "5432").
 */
import { _, Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { PERSONAL_DATA } from '../record-schema.ts';

// ajv-formats is CommonJS; depending on the loader the default import is the plugin or its module object.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (
  ajv: Ajv,
) => Ajv;

/**
 * `standalone`: also keep each validator's source, for engine/schema/compiled.ts to write out as a module;
 * formats are then referred to as `formats`, which that module defines.
 */
export function createAjv(options: { standalone?: boolean } = {}): Ajv {
  const ajv = new Ajv({
    strict: true,
    allErrors: true,
    useDefaults: true,
    coerceTypes: true,
    discriminator: true,
    // Errors carry the offending value and the schema that refused it, for plain-language messages.
    verbose: true,
    allowUnionTypes: true,
    ...(options.standalone ? { code: { source: true, esm: true, formats: _`formats` } } : {}),
  });
  addFormats(ajv);
  ajv.addVocabulary([PERSONAL_DATA]); // an annotation of record schemas (engine/record-schema.ts): checks nothing
  return ajv;
}

/**
 * For holding records to record schemas (engine/record-schema.ts): strict, but a record is never changed, so
 * no coercion and no defaults; schemas with an `$id` are not kept, so the same one may be compiled again.
 */
export function createRecordAjv(): Ajv {
  const ajv = new Ajv({ strict: true, allErrors: true, allowUnionTypes: true, addUsedSchema: false });
  addFormats(ajv);
  ajv.addVocabulary([PERSONAL_DATA]);
  return ajv;
}
