/**
 * The record schema a table's columns derive from: the schema of the records reaching the sink, as the graph
 * pass computed it (a field an enrichment adds becomes a typed column with no configuration), or the one
 * `record_schema:` names instead.
 */
import { isDeepStrictEqual } from 'node:util';
import {
  DEAD_LETTER_SCHEMA,
  type FieldSchema,
  OPEN_RECORD_SCHEMA,
  type RecordSchema,
} from '../../../engine/record-schema.ts';
import { accessRecordSchema, errorLogRecordSchema } from '../../shared/log-records.ts';

export type RecordSchemaName = 'access' | 'error_log' | 'dead_letter' | 'none';

/** Any records: no column of their own but those under `columns:`, every field in the extra column. */
const NONE: RecordSchema = { type: 'object', properties: {} };

const ADDRESS: FieldSchema = { type: ['string', 'null'], format: 'ip' };

/**
 * What the log records leave open but a table should enforce: an HTTP status has three digits, so
 * `status: 70000` is a bad row (dead-lettered), not a bigint; the client is an address, stored as inet
 * (servers that log host names, Apache's HostnameLookups, need `columns: { client_ip: text }`). Each applies
 * to the field as the shared log records declare it, whichever stages passed it on, and to no other field of
 * that name.
 */
const REFINEMENTS: ReadonlyArray<{ name: string; declared: FieldSchema; refined: FieldSchema }> = [
  {
    name: 'status',
    declared: accessRecordSchema.properties.status,
    refined: { type: ['integer', 'null'], minimum: 100, maximum: 999 },
  },
  { name: 'client_ip', declared: accessRecordSchema.properties.client_ip, refined: ADDRESS },
  { name: 'client_ip', declared: errorLogRecordSchema.properties.client_ip, refined: ADDRESS },
];

/** The schema the columns derive from: `record_schema:` when set, else the input's (open when unknown). */
export function tableRecordSchema(name: RecordSchemaName | undefined, input: RecordSchema | undefined): RecordSchema {
  return refine(name === undefined ? (input ?? OPEN_RECORD_SCHEMA) : namedSchema(name));
}

function namedSchema(name: RecordSchemaName): RecordSchema {
  if (name === 'dead_letter') return DEAD_LETTER_SCHEMA;
  if (name === 'error_log') return errorLogRecordSchema;
  if (name === 'none') return NONE;
  return accessRecordSchema;
}

function refine(schema: RecordSchema): RecordSchema {
  const properties = schema.properties;
  if (properties === undefined) return schema;
  let refined: Record<string, FieldSchema> | undefined;
  for (const { name, declared, refined: stricter } of REFINEMENTS) {
    const field = properties[name];
    if (field === undefined || !isDeepStrictEqual(field, declared)) continue;
    refined ??= { ...properties };
    refined[name] = { ...stricter, ...(field.description === undefined ? {} : { description: field.description }) };
  }
  return refined === undefined ? schema : { ...schema, properties: refined };
}
