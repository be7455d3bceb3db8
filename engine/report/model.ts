/**
 * What a report holds, before it becomes HTML: totals, then sections of a chart and the table it is drawn from.
 * Values are plain numbers and strings (never HTML): the renderer escapes every one of them.
 */

/** How a column's numbers read: `count` 12,345; `bytes` 1.2 MiB; `ms` 85.3 ms; `percent` 12.5 %. */
export type ValueKind = 'text' | 'count' | 'bytes' | 'ms' | 'percent' | 'time';

export interface Column {
  readonly label: string;
  readonly kind: ValueKind;
}

export type Cell = string | number | null;

export interface DataTable {
  readonly columns: readonly Column[];
  readonly rows: ReadonlyArray<readonly Cell[]>;
}

export interface ChartSeries {
  readonly label: string;
  /** The table column the values come from, so that the page (and its test) can tie the two together. */
  readonly column: number;
  readonly values: readonly number[];
}

export interface Chart {
  readonly type: 'line' | 'bar' | 'doughnut';
  /** One per table row, from the table's column `labelColumn`. */
  readonly labels: readonly string[];
  readonly labelColumn: number;
  readonly series: readonly ChartSeries[];
  readonly unit: ValueKind;
}

export interface Section {
  readonly id: string;
  readonly title: string;
  /** Where the numbers come from and how to read them, in a sentence. */
  readonly note: string;
  readonly table: DataTable;
  readonly chart?: Chart;
}

/** A section the pipelines cannot fill, and what would fill it. */
export interface Missing {
  readonly title: string;
  readonly reason: string;
}

export interface Total {
  readonly label: string;
  readonly value: number | string;
  readonly kind: ValueKind;
}

export interface Report {
  readonly title: string;
  readonly generatedAt: string;
  readonly pipelines: readonly string[];
  /** The period the data covers (ISO strings), or the one asked for with --from / --to. */
  readonly period: { readonly from: string | null; readonly to: string | null };
  readonly totals: readonly Total[];
  readonly sections: readonly Section[];
  readonly missing: readonly Missing[];
}

/** A chart drawn from columns of `table`: labels from `labelColumn`, one series per value column. */
export function chartOf(
  table: DataTable,
  type: Chart['type'],
  labelColumn: number,
  valueColumns: readonly number[],
  unit?: ValueKind,
): Chart {
  return {
    type,
    labelColumn,
    labels: table.rows.map((row) =>
      table.columns[labelColumn]?.kind === 'time'
        ? timeLabel(row[labelColumn] ?? null)
        : String(row[labelColumn] ?? '\u2014'),
    ),
    series: valueColumns.map((column) => ({
      label: table.columns[column]?.label ?? '',
      column,
      values: table.rows.map((row) => Number(row[column] ?? 0)),
    })),
    unit: unit ?? table.columns[valueColumns[0] ?? 0]?.kind ?? 'count',
  };
}

/** `2026-12-01T13:00:00.000Z` → `2026-12-01 13:00` (UTC), as tables and chart axes show times. */
export function timeLabel(value: Cell): string {
  if (value === null) return '';
  const text = String(value);
  const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(text);
  if (!match) return text;
  return `${match[1]} ${match[2]}`;
}
