/** Options and the input's record schema → the table layout, the COPY target and the staging statements. */
import type { OptionProblem } from '../../../engine/operator.ts';
import { isClosed, type RecordSchema, unknownField } from '../../../engine/record-schema.ts';
import { type Column, deriveColumns } from './columns.ts';
import { copyTarget, qualified, type TableLayout } from './ddl.ts';
import { ident } from './driver.ts';
import type { StagingSpec } from './loader.ts';
import { tableRecordSchema } from './record-schemas.ts';
import { ORIGIN_COLUMN_TYPES, type OriginProperty, type PostgresSinkOptions, type SqlType } from './schema.ts';

/** The table for these options and `input`, the schema of the records reaching the sink (ctx.inputSchema). */
export function buildLayout(options: PostgresSinkOptions, input: RecordSchema | undefined): TableLayout {
  const derived = deriveColumns(
    tableRecordSchema(options.record_schema, input),
    options.columns as Readonly<Record<string, SqlType>>,
    options.extra_column,
  );
  for (const [name, property] of Object.entries(options.origin_columns)) {
    // Filled by the sink, never from a record field: a field of the same name is refused by `layoutProblems`.
    const at = derived.findIndex((c) => c.name === name);
    const column: Column = { name, type: ORIGIN_COLUMN_TYPES[property as OriginProperty], required: false };
    if (at === -1) derived.push(column);
    else derived[at] = column;
  }
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

/**
 * Cross-field checks. `input`: the schema of the records reaching the sink; when it is unknown (problems
 * reported elsewhere) and no `record_schema` names one, the columns are unknown and not judged.
 */
export function layoutProblems(options: PostgresSinkOptions, input: RecordSchema | undefined): OptionProblem[] {
  const problems: OptionProblem[] = [];
  if (options.record_schema !== undefined || input !== undefined) problems.push(...columnProblems(options, input));
  if (options.retention !== undefined && options.partition === 'none') {
    problems.push({
      path: ['retention'],
      message: 'retention drops partitions and needs partition: hour, day or month',
    });
  }
  if (!options.unique_key && options.on_conflict === 'update') {
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

/** Names of columns that must exist, and `columns:` entries no record can fill. */
function columnProblems(options: PostgresSinkOptions, input: RecordSchema | undefined): OptionProblem[] {
  const problems: OptionProblem[] = [];
  const layout = buildLayout(options, input);
  // The table's columns, as a closed record schema: names are checked, and misspellings suggested, against it.
  const table: RecordSchema = {
    type: 'object',
    additionalProperties: false,
    properties: Object.fromEntries(layout.columns.map((c) => [c.name, {}])),
  };
  const known = `columns: ${layout.columns.map((c) => c.name).join(', ')}`;
  const unknownColumn = (path: (string | number)[], name: string): void => {
    const problem = unknownField(table, name, 'column');
    if (problem) problems.push({ path, message: problem.message, hint: known, code: 'ETL_GRAPH_UNKNOWN_FIELD' });
  };
  const timeType = layout.columns.find((c) => c.name === options.time_column)?.type;
  if (options.partition !== 'none' && layout.timeColumn === undefined) {
    problems.push({
      path: ['time_column'],
      ...(timeType === undefined ? { code: 'ETL_GRAPH_UNKNOWN_FIELD' as const } : {}),
      message:
        timeType === undefined
          ? `time_column \`${options.time_column}\` is no column of the table${unknownField(table, options.time_column)?.suggestion ?? ''}`
          : `time_column ${options.time_column} is ${timeType}; partitioning needs a timestamptz column`,
      hint: timeHint(layout),
    });
  }
  options.indexes.forEach((index, i) => {
    index.columns.forEach((column, j) => {
      unknownColumn(['indexes', i, 'columns', j], column);
    });
  });
  if (options.unique_key) {
    options.unique_key.forEach((column, j) => {
      unknownColumn(['unique_key', j], column);
    });
    if (layout.granularity && !options.unique_key.includes(options.time_column)) {
      problems.push({
        path: ['unique_key'],
        message: `a unique key of a partitioned table must include the partition key ${options.time_column}`,
      });
    }
  }
  const records = tableRecordSchema(options.record_schema, input);
  for (const name of Object.keys(options.origin_columns)) {
    if (name === options.extra_column || name in (records.properties ?? {}) || name in options.columns) {
      problems.push({
        path: ['origin_columns', name],
        message: `origin column \`${name}\` is also a field of the records or a column of \`columns\``,
        hint: 'give the origin column another name',
      });
    }
  }
  // A column no record carries stays empty: with a closed schema, that is a misspelt field.
  for (const name of Object.keys(options.columns)) {
    const problem = name === options.extra_column || !isClosed(records) ? undefined : unknownField(records, name);
    if (problem === undefined) continue;
    problems.push({
      path: ['columns', name],
      message: `column \`${name}\` will stay empty: the records reaching the sink have no such field${problem.suggestion}`,
      hint: `their fields: ${problem.names.join(', ')}`,
      severity: 'warning',
      code: 'ETL_GRAPH_UNKNOWN_FIELD',
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
