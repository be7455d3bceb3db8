/** What the report's sections share: the period, columns present, the top-N size, rows into a data table. */
import type { Cell, DataTable } from './model.ts';
import { ident, literal, type StoredTable } from './sources.ts';

export interface Period {
  readonly from?: Date;
  readonly to?: Date;
}

/** Rows in a top-N table. */
export const TOP = 15;

export function has(table: StoredTable, ...columns: string[]): boolean {
  return columns.every((c) => table.columns.has(c));
}

/** `AND`-able condition on `column` for the period (dates validated by the caller, written as ISO literals). */
export function within(column: string, period: Period, alias?: string): string {
  const name = alias ? `${alias}.${ident(column)}` : ident(column);
  const parts = ['TRUE'];
  if (period.from) parts.push(`${name} >= ${literal(period.from.toISOString())}::timestamptz`);
  if (period.to) parts.push(`${name} < ${literal(period.to.toISOString())}::timestamptz`);
  return parts.join(' AND ');
}

export function table(columns: DataTable['columns'], data: unknown[][]): DataTable {
  return { columns, rows: data.map((row) => row.map(cellOf)) };
}

function cellOf(value: unknown): Cell {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'number' || typeof value === 'string') return value;
  return String(value);
}
