/**
 * The dedupe key of a record: a SHA-1 of the canonical JSON of the key fields' values (or of the whole
 * record, fields sorted), so that a key takes 27 characters in memory or in Redis whatever the records hold.
 */
import { hash } from 'node:crypto';
import type { EtlRecord } from '../../../engine/record.ts';

export type KeyOf = (record: EtlRecord) => string;

export function keyFunction(fields: readonly string[] | undefined): KeyOf {
  if (fields === undefined) return (record) => digest(canonical(record));
  const getters = fields.map(getter);
  // The canonical JSON array of the values, written without building the array (this runs for every record).
  const [only] = getters;
  if (getters.length === 1 && only !== undefined) return (record) => digest(`[${canonical(only(record))}]`);
  return (record) => {
    let text = '[';
    for (let i = 0; i < getters.length; i++) text += (i > 0 ? ',' : '') + canonical((getters[i] as Getter)(record));
    return digest(`${text}]`);
  };
}

type Getter = (record: EtlRecord) => unknown;

/** A field named literally so, or else a dotted path into object fields (engine/operator.ts FieldUse). */
function getter(field: string): Getter {
  const path = field.split('.');
  if (path.length === 1) return (record) => record[field];
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

function digest(text: string): string {
  return hash('sha1', text, 'base64').slice(0, 27);
}

/** JSON with object keys sorted (so that field order does not matter) and bigints as numbers' text. */
function canonical(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
    case 'boolean':
      return String(value);
    case 'bigint':
      return value.toString();
    case 'object': {
      if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
      if (value instanceof Date) return JSON.stringify(value.toISOString());
      const object = value as Record<string, unknown>;
      const keys = Object.keys(object).sort();
      let out = '{';
      for (const key of keys) {
        if (object[key] === undefined) continue;
        if (out.length > 1) out += ',';
        out += `${JSON.stringify(key)}:${canonical(object[key])}`;
      }
      return `${out}}`;
    }
    default:
      return 'null';
  }
}
