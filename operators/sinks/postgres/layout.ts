/** Options → the table layout, the COPY target and the staging statements; shared by validation and the sink. */
import type { OptionProblem } from '../../../engine/operator.ts';
import { type Column, deriveColumns } from './columns.ts';
import { qualified, type TableLayout } from './ddl.ts';
import { ident } from './driver.ts';
import { copyTarget, type StagingSpec } from './loader.ts';
import { recordSchema } from './record-schemas.ts';
import type { PostgresSinkOptions, SqlType } from './schema.ts';

export function buildLayout(options: PostgresSinkOptions): TableLayout {
  const derived = deriveColumns(
    recordSchema(options.record_schema),
    options.columns as Readonly<Record<string, SqlType>>,
    options.extra_column,
  );
  const partitioned = options.partition !== 'none';
  const time = derived.find((c) => c.name === options.time_column && c.type === 'timestamptz');
  // The partition key decides where a row goes: a row without one is refused, not parked in the default partition.
  const columns: Column[] = derived.map((c) => (c === time && partitioned ? { ...c, required: true } : c));
  return {
    schema: options.schema,
    table: options.table,
    columns,
    timeColumn: time?.name,
    granularity: partitioned && time ? (options.partition as 'hour' | 'day' | 'month') : undefined,
    indexes: options.indexes.map((i) => ({ columns: i.columns, method: i.method })),
    uniqueKey: options.unique_key,
  };
}

export function layoutProblems(options: PostgresSinkOptions): OptionProblem[] {
  const problems: OptionProblem[] = [];
  const layout = buildLayout(options);
  const names = new Set(layout.columns.map((c) => c.name));
  const known = [...names].join(', ');
  const timeType = layout.columns.find((c) => c.name === options.time_column)?.type;
  if (options.partition !== 'none' && layout.timeColumn === undefined) {
    problems.push({
      path: ['time_column'],
      message:
        timeType === undefined
          ? `time_column ${options.time_column} is not a column of ${options.record_schema} records (columns: ${known})`
          : `time_column ${options.time_column} is ${timeType}; partitioning needs a timestamptz column`,
      hint: timeHint(layout),
    });
  }
  if (options.retention !== undefined && options.partition === 'none') {
    problems.push({
      path: ['retention'],
      message: 'retention drops partitions and needs partition: hour, day or month',
    });
  }
  options.indexes.forEach((index, i) => {
    index.columns.forEach((column, j) => {
      if (!names.has(column)) {
        problems.push({
          path: ['indexes', i, 'columns', j],
          message: `unknown column ${column}`,
          hint: `columns: ${known}`,
        });
      }
    });
  });
  if (options.unique_key) {
    options.unique_key.forEach((column, j) => {
      if (!names.has(column)) {
        problems.push({ path: ['unique_key', j], message: `unknown column ${column}`, hint: `columns: ${known}` });
      }
    });
    if (layout.granularity && !options.unique_key.includes(options.time_column)) {
      problems.push({
        path: ['unique_key'],
        message: `a unique key of a partitioned table must include the partition key ${options.time_column}`,
      });
    }
  } else if (options.on_conflict === 'update') {
    problems.push({ path: ['on_conflict'], message: 'on_conflict applies only with unique_key', severity: 'warning' });
  }
  if (options.reconnect_initial_backoff_ms > options.reconnect_max_backoff_ms) {
    problems.push({
      path: ['reconnect_initial_backoff_ms'],
      message: 'reconnect_initial_backoff_ms is larger than reconnect_max_backoff_ms',
    });
  }
  return problems;
}

export function copyTargetOf(layout: TableLayout): string {
  return copyTarget(
    qualified(layout.schema, layout.table),
    layout.columns.map((c) => c.name),
  );
}

/** A session-local staging table and the INSERT … ON CONFLICT that empties it into the target. */
export function stagingOf(layout: TableLayout, onConflict: 'ignore' | 'update'): StagingSpec | undefined {
  const key = layout.uniqueKey;
  if (!key) return undefined;
  const stage = ident(`etl_stage_${layout.table}`);
  const target = qualified(layout.schema, layout.table);
  const cols = layout.columns.map((c) => ident(c.name)).join(', ');
  const keyCols = key.map(ident).join(', ');
  const updatable = layout.columns.filter((c) => !key.includes(c.name));
  let move: string;
  if (onConflict === 'update' && updatable.length > 0) {
    const set = updatable.map((c) => `${ident(c.name)} = EXCLUDED.${ident(c.name)}`).join(', ');
    // One statement cannot update a row twice: within a batch the last row of a key wins.
    move =
      `WITH d AS (DELETE FROM ${stage} RETURNING *) INSERT INTO ${target} (${cols}) ` +
      `SELECT DISTINCT ON (${keyCols}) ${cols} FROM d ORDER BY ${keyCols}, etl_ord DESC ` +
      `ON CONFLICT (${keyCols}) DO UPDATE SET ${set}`;
  } else {
    move =
      `WITH d AS (DELETE FROM ${stage} RETURNING *) INSERT INTO ${target} (${cols}) ` +
      `SELECT ${cols} FROM d ORDER BY etl_ord ON CONFLICT (${keyCols}) DO NOTHING`;
  }
  return {
    table: copyTarget(
      stage,
      layout.columns.map((c) => c.name),
    ),
    create: `CREATE TEMP TABLE IF NOT EXISTS ${stage} (LIKE ${target} INCLUDING DEFAULTS, etl_ord bigserial)`,
    move,
  };
}

function timeHint(layout: TableLayout): string {
  const times = layout.columns.filter((c) => c.type === 'timestamptz').map((c) => `\`time_column: ${c.name}\``);
  const named = times.length > 0 ? `set ${times.join(' or ')}, ` : 'name a date-time field, ';
  return `${named}add one under \`columns\` as timestamptz, or set partition: none`;
}
