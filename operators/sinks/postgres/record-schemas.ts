/** The JSON Schemas of the record kinds a table's columns can be derived from. */
import { accessRecordSchema, errorLogRecordSchema } from '../../transforms/parse/record.schema.ts';
import type { PropertySchema, RecordSchema } from './columns.ts';

/** Dead letters (engine/record.ts `DeadLetter`). */
export const deadLetterRecordSchema = {
  type: 'object',
  required: ['stage', 'reason', 'time', 'raw'],
  properties: {
    time: { type: 'string', format: 'date-time', description: 'When the record was rejected.' },
    stage: { type: 'string', description: 'Stage that rejected it.' },
    reason: { type: 'string', description: 'Why.' },
    origin: { type: 'object', description: 'Source, file, offset and line it came from.' },
    raw: { type: 'string', description: 'The original line, or the record as JSON.' },
  },
} as const satisfies RecordSchema;

const NONE: RecordSchema = { properties: {} };

/**
 * What the access record leaves open but a table should enforce: an HTTP status has three digits, so
 * `status: 70000` is a bad row (dead-lettered), not a bigint; the client is an address, stored as inet
 * (servers that log host names, Apache's HostnameLookups, need `columns: { client_ip: text }`).
 */
const ACCESS_REFINEMENTS: Readonly<Record<string, PropertySchema>> = {
  status: { type: ['integer', 'null'], minimum: 100, maximum: 999 },
  client_ip: { type: ['string', 'null'], format: 'ip' },
};

const access: RecordSchema = {
  ...(accessRecordSchema as RecordSchema),
  properties: { ...(accessRecordSchema as RecordSchema).properties, ...ACCESS_REFINEMENTS },
};

/** Error-log entries name their client too; nginx context addresses are addresses. */
const errorLog: RecordSchema = {
  ...(errorLogRecordSchema as RecordSchema),
  properties: {
    ...(errorLogRecordSchema as RecordSchema).properties,
    client_ip: { type: ['string', 'null'], format: 'ip' },
  },
};

export type RecordSchemaName = 'access' | 'error_log' | 'dead_letter' | 'none';

export function recordSchema(name: RecordSchemaName): RecordSchema {
  if (name === 'dead_letter') return deadLetterRecordSchema;
  if (name === 'error_log') return errorLog;
  if (name === 'none') return NONE;
  return access;
}
