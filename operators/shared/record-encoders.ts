/** Turns a batch into JSON lines or CSV text (the file and s3 sinks); a record that cannot be encoded is dead-lettered alone. */
import { stringify } from 'csv-stringify/sync';
import type { SinkWriteContext } from '../../engine/operator.ts';
import type { EtlRecord } from '../../engine/record.ts';
import { fieldNames, isClosed, type RecordSchema } from '../../engine/record-schema.ts';

export interface Encoder {
  /** The batch as text; records that cannot be encoded go to `ctx.deadLetter` and are left out. */
  encode(records: EtlRecord[], ctx: SinkWriteContext): string;
  /** What a new file starts with (the CSV header), or '' when nothing is known yet or needed. */
  header(): string;
}

export class JsonlEncoder implements Encoder {
  encode(records: EtlRecord[], ctx: SinkWriteContext): string {
    let out = '';
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as EtlRecord;
      try {
        out += `${JSON.stringify(record)}\n`;
      } catch (error) {
        ctx.deadLetter(record, `cannot write as JSON: ${(error as Error).message}`);
      }
    }
    return out;
  }

  header(): string {
    return '';
  }
}

interface Column {
  readonly name: string;
  /** The dotted path, when the name has dots; a key literally named `a.b` still wins. */
  readonly path: readonly string[] | undefined;
}

/**
 * The CSV columns records of `schema` call for when `fields` is not set: its fields in schema order, when it
 * lists every field records may carry; else undefined (the keys of the first record written are taken).
 */
export function schemaColumns(schema: RecordSchema | undefined): string[] | undefined {
  if (schema === undefined || !isClosed(schema)) return undefined;
  const names = fieldNames(schema);
  return names.length > 0 ? names : undefined;
}

export class CsvEncoder implements Encoder {
  private columns: Column[] | undefined;

  constructor(fields: readonly string[] | undefined) {
    if (fields) this.columns = compile(fields);
  }

  /** The columns in use: configured, derived from the input's schema, restored, or taken from the first record. */
  get fields(): string[] | undefined {
    return this.columns?.map((c) => c.name);
  }

  /** Columns a checkpoint recorded (taken from an earlier run's first record). */
  restoreFields(fields: readonly string[]): void {
    this.columns = compile(fields);
  }

  encode(records: EtlRecord[], ctx: SinkWriteContext): string {
    if (records.length === 0) return '';
    this.columns ??= compile(Object.keys(records[0] as EtlRecord));
    const columns = this.columns;
    const rows: string[][] = [];
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as EtlRecord;
      const row = new Array<string>(columns.length);
      try {
        for (let c = 0; c < columns.length; c++) row[c] = cell(lookup(record, columns[c] as Column));
      } catch (error) {
        ctx.deadLetter(record, `cannot write as CSV: ${(error as Error).message}`);
        continue;
      }
      rows.push(row);
    }
    return rows.length === 0 ? '' : stringify(rows);
  }

  header(): string {
    return this.columns ? stringify([this.columns.map((c) => c.name)]) : '';
  }
}

function compile(fields: readonly string[]): Column[] {
  return fields.map((name) => ({ name, path: name.includes('.') ? name.split('.') : undefined }));
}

function lookup(record: EtlRecord, column: Column): unknown {
  if (column.path === undefined || column.name in record) return record[column.name];
  let value: unknown = record;
  for (const part of column.path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** One cell as text: missing as empty, objects and arrays as JSON; values with no text form are refused. */
function cell(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(value);
    case 'undefined':
      return '';
    case 'object':
      if (value === null) return '';
      if (value instanceof Date) return value.toISOString();
      return JSON.stringify(value);
    default:
      throw new TypeError(`a ${typeof value} has no text form`);
  }
}
