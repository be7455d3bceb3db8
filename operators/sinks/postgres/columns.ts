/**
 * Table columns derived from a record's JSON Schema: each top-level property becomes a column whose type
 * follows the declared type, format and range, so that PostgreSQL stores what the schema promises.
 */
import type { SqlType } from './schema.ts';

/** The subset of JSON Schema the derivation reads. */
export interface PropertySchema {
  readonly type?: string | readonly string[];
  readonly format?: string;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly exclusiveMinimum?: number;
  readonly exclusiveMaximum?: number;
  readonly multipleOf?: number;
  readonly anyOf?: readonly PropertySchema[];
  readonly oneOf?: readonly PropertySchema[];
  readonly description?: string;
}

export interface RecordSchema {
  readonly type?: string;
  readonly properties?: Readonly<Record<string, PropertySchema>>;
  readonly required?: readonly string[];
}

export interface Column {
  /** Column name, equal to the record field it is read from. */
  readonly name: string;
  readonly type: SqlType;
  /** Inclusive numeric bounds a value must respect (from the type and the schema). */
  readonly min?: number;
  readonly max?: number;
  /** The bound itself is excluded (JSON Schema exclusiveMinimum / exclusiveMaximum on non-integers). */
  readonly minExclusive?: boolean;
  readonly maxExclusive?: boolean;
  /** A null or missing value is rejected. */
  readonly required: boolean;
}

const INT_RANGES: ReadonlyArray<readonly [SqlType, number, number]> = [
  ['smallint', -32768, 32767],
  ['integer', -2147483648, 2147483647],
  ['bigint', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
];

const GEO_FIELD = /(^|_)(lat|lon|lng|latitude|longitude)$/;

/** Bounds each SQL type can hold; a value outside is a bad row, not a failed batch. */
export function typeBounds(type: SqlType): { min?: number; max?: number } {
  for (const [t, min, max] of INT_RANGES) if (t === type) return { min, max };
  return {};
}

export function deriveColumns(
  schema: RecordSchema,
  overrides: Readonly<Record<string, SqlType>>,
  extraColumn: string,
): Column[] {
  const required = new Set(schema.required ?? []);
  const columns = new Map<string, Column>();
  for (const [name, prop] of Object.entries(schema.properties ?? {})) {
    const type = overrides[name] ?? columnType(name, prop);
    // `required` only means present: a property whose type admits null may still be null.
    columns.set(name, withBounds(name, type, prop, required.has(name) && !allowsNull(prop)));
  }
  for (const [name, type] of Object.entries(overrides)) {
    if (!columns.has(name)) columns.set(name, withBounds(name, type, {}, false));
  }
  // The catch-all column is optional whatever the schema says: records of other stages may not carry it.
  const extra = columns.get(extraColumn);
  columns.set(extraColumn, { name: extraColumn, type: extra?.type ?? 'jsonb', required: false });
  return [...columns.values()];
}

/** The SQL type a JSON Schema property maps to. */
export function columnType(name: string, prop: PropertySchema): SqlType {
  const variants = (prop.anyOf ?? prop.oneOf ?? [prop]).filter((v) => !isNullOnly(v));
  if (variants.length !== 1) return 'jsonb';
  const p = variants[0] as PropertySchema;
  const types = (Array.isArray(p.type) ? p.type : [p.type]).filter((t) => t !== 'null');
  if (types.length !== 1) return types.every((t) => t === 'integer' || t === 'number') ? 'double precision' : 'jsonb';
  switch (types[0]) {
    case 'string':
      if (p.format === 'date-time') return 'timestamptz';
      if (p.format === 'ipv4' || p.format === 'ipv6' || p.format === 'ip') return 'inet';
      return 'text';
    case 'integer':
      return integerType(p);
    case 'number':
      return GEO_FIELD.test(name) || (p.multipleOf !== undefined && p.multipleOf < 1) ? 'numeric' : 'double precision';
    case 'boolean':
      return 'boolean';
    default:
      return 'jsonb';
  }
}

function integerType(p: PropertySchema): SqlType {
  const lo = p.minimum ?? (p.exclusiveMinimum === undefined ? undefined : p.exclusiveMinimum + 1);
  const hi = p.maximum ?? (p.exclusiveMaximum === undefined ? undefined : p.exclusiveMaximum - 1);
  if (lo === undefined || hi === undefined) return 'bigint';
  for (const [type, min, max] of INT_RANGES) if (lo >= min && hi <= max) return type;
  return 'numeric';
}

function withBounds(name: string, type: SqlType, prop: PropertySchema, required: boolean): Column {
  const bounds = typeBounds(type);
  let min = bounds.min;
  let max = bounds.max;
  const variant = (prop.anyOf ?? prop.oneOf ?? [prop]).find((v) => !isNullOnly(v)) ?? prop;
  const integral = bounds.min !== undefined;
  const column: { -readonly [K in keyof Column]: Column[K] } = { name, type, required };
  if (isNumeric(type)) {
    if (variant.minimum !== undefined) min = min === undefined ? variant.minimum : Math.max(min, variant.minimum);
    else if (variant.exclusiveMinimum !== undefined) {
      if (integral) min = Math.max(min as number, Math.floor(variant.exclusiveMinimum) + 1);
      else [min, column.minExclusive] = [variant.exclusiveMinimum, true];
    }
    if (variant.maximum !== undefined) max = max === undefined ? variant.maximum : Math.min(max, variant.maximum);
    else if (variant.exclusiveMaximum !== undefined) {
      if (integral) max = Math.min(max as number, Math.ceil(variant.exclusiveMaximum) - 1);
      else [max, column.maxExclusive] = [variant.exclusiveMaximum, true];
    }
  }
  if (min !== undefined) column.min = min;
  if (max !== undefined) column.max = max;
  return column;
}

function isNumeric(type: SqlType): boolean {
  return (
    type === 'smallint' || type === 'integer' || type === 'bigint' || type === 'numeric' || type === 'double precision'
  );
}

function allowsNull(p: PropertySchema): boolean {
  if (p.anyOf ?? p.oneOf) return (p.anyOf ?? p.oneOf ?? []).some(allowsNull);
  return p.type === 'null' || (Array.isArray(p.type) && p.type.includes('null'));
}

function isNullOnly(p: PropertySchema): boolean {
  return p.type === 'null';
}
