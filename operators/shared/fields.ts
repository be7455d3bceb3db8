/**
 * Reading the fields an operator's options name (key fields, a time field) from records: shared by the
 * stateful transforms (sessionize, anomalies); `fieldGetter` by the per-record checks and enrichments.
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

/** Reads one named field: a key literally named so first, else a dotted path into object fields. */
export type FieldReader = (record: EtlRecord) => unknown;

export function fieldReader(field: string): FieldReader {
  const path = field.includes('.') ? field.split('.') : undefined;
  if (!path) return (record) => record[field];
  return (record) => {
    if (field in record) return record[field];
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

/**
 * Epoch milliseconds of an event time as records carry it: an ISO-8601 text (parse's `timestamp`), a number
 * of milliseconds or a Date; NaN for anything else (null, a text that is no time). The engine's watermark
 * reads the event-time field the same way (engine/runtime/watermark.ts).
 */
export function eventTimeOf(value: unknown): number {
  if (typeof value === 'string') return Date.parse(value);
  // Beyond ±8.64e15 ms a Date is invalid (and `toISOString` throws).
  if (typeof value === 'number') return Math.abs(value) <= 8.64e15 ? value : Number.NaN;
  if (value instanceof Date) return value.getTime();
  return Number.NaN;
}
