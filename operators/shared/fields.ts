/**
 * Reading the fields an operator's options name (key fields, a time field, an enrichment's source field) from
 * records: shared by the transforms that name fields (sessionize, anomalies, geoip, user_agent, validate,
 * threat_intel).
 */
import type { EtlRecord } from '../../engine/record.ts';

/**
 * Reads the field literally named `field`, by code generated for that name. `(record) => record[field]` is one
 * load site shared by every field an operator reads, which V8 then handles as a megamorphic keyed load (a
 * lookup in a global stub cache at best); a generated function has a site of its own, specialised to the
 * shape of the records it sees. The name is written as a JSON string literal, so any name is safe.
 */
export function fieldGetter(field: string): FieldReader {
  return new Function('record', `return record[${JSON.stringify(field)}];`) as FieldReader;
}

/** Reads one named field of records. */
export type FieldReader = (record: EtlRecord) => unknown;

/**
 * Reads `field` from records: a dotted name (`upstream.addr`) is the field literally named so, or else a path
 * into object fields, as `fields()` declarations mean it (engine/operator.ts `FieldUse`).
 */
export function fieldReader(field: string): FieldReader {
  const path = field.includes('.') ? field.split('.') : undefined;
  if (!path) return fieldGetter(field);
  return (record) => {
    if (Object.hasOwn(record, field)) return record[field];
    let value: unknown = record;
    for (const part of path) {
      if (value === null || typeof value !== 'object') return undefined;
      value = (value as Record<string, unknown>)[part];
    }
    return value;
  };
}

/**
 * The text identifying a record's key: its key fields' values as a JSON array (a missing value as null), so
 * that values containing any separator cannot make two keys equal. `more`: values derived from the record.
 */
export function keyOf(readers: readonly FieldReader[], record: EtlRecord, ...more: unknown[]): string {
  const values = new Array<unknown>(readers.length);
  for (let i = 0; i < readers.length; i++) values[i] = (readers[i] as FieldReader)(record) ?? null;
  for (const value of more) values.push(value);
  return JSON.stringify(values);
}
