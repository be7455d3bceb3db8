/**
 * Table management: reads what exists, and plans the additive DDL that makes the table match the layout
 * (create schema and table, default partition, ADD COLUMN for new fields, indexes, checkpoint table).
 * Nothing here ever drops or alters an existing column; a type that differs is reported, not changed.
 */
import { createHash } from 'node:crypto';
import { EtlError } from '../../../engine/errors.ts';
import type { Column } from './columns.ts';
import { ident, literal, type Session } from './driver.ts';
import type { Granularity } from './time.ts';

export const CHECKPOINT_TABLE = 'etl_checkpoints';
/** Rows the server refused after their batch was acknowledged (see loader.ts). */

export interface IndexSpec {
  readonly columns: readonly string[];
  readonly method: string;
}

export interface TableLayout {
  readonly schema: string;
  readonly table: string;
  readonly columns: readonly Column[];
  /** The timestamptz event-time column, when the table has one. */
  readonly timeColumn: string | undefined;
  /** Partition granularity; undefined: a plain table. */
  readonly granularity: Granularity | undefined;
  readonly indexes: readonly IndexSpec[];
  readonly uniqueKey: readonly string[] | undefined;
}

/** What the database holds now. */
export interface TableState {
  readonly schemaExists: boolean;
  /** undefined when the table does not exist; 'p' partitioned, 'r' plain. */
  readonly relkind: string | undefined;
  readonly comment: string | undefined;
  /** Column name → its type as format_type prints it. */
  readonly columns: ReadonlyMap<string, string>;
  readonly indexes: ReadonlySet<string>;
  /** Names of the attached partitions (the default one included). */
  readonly partitions: ReadonlySet<string>;
  readonly checkpointTable: boolean;
}

export const EMPTY_STATE: TableState = {
  schemaExists: false,
  relkind: undefined,
  comment: undefined,
  columns: new Map(),
  indexes: new Set(),
  partitions: new Set(),
  checkpointTable: false,
};

export function qualified(schema: string, name: string): string {
  return `${ident(schema)}.${ident(name)}`;
}

export function defaultPartitionName(table: string): string {
  return `${table}_default`;
}

/** The marker written as the table comment, so a later run with another granularity is refused. */
export function layoutComment(layout: TableLayout): string {
  return `etl: partition=${layout.granularity ?? 'none'}`;
}

export async function inspect(session: Session, schema: string, table: string): Promise<TableState> {
  const ns = await session.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
  if (ns.rows.length === 0) return EMPTY_STATE;
  const rels = await session.query(
    `SELECT c.oid::int8::text AS oid, c.relname::text AS name, c.relkind::text AS relkind,
            obj_description(c.oid, 'pg_class') AS comment
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname IN ($2, $3) AND c.relkind IN ('r', 'p')`,
    [schema, table, CHECKPOINT_TABLE],
  );
  const checkpointTable = rels.rows.some((r) => r.name === CHECKPOINT_TABLE);
  const own = rels.rows.find((r) => r.name === table);
  if (!own) return { ...EMPTY_STATE, schemaExists: true, checkpointTable };
  const oid = String(own.oid);
  const cols = await session.query(
    `SELECT attname::text AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute
      WHERE attrelid = $1::int8::oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    [oid],
  );
  const idx = await session.query(
    'SELECT c.relname::text AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::int8::oid',
    [oid],
  );
  const parts = await session.query(
    'SELECT c.relname::text AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::int8::oid',
    [oid],
  );
  return {
    schemaExists: true,
    relkind: String(own.relkind),
    comment: typeof own.comment === 'string' ? own.comment : undefined,
    columns: new Map(cols.rows.map((r) => [String(r.name), String(r.type)])),
    indexes: new Set(idx.rows.map((r) => String(r.name))),
    partitions: new Set(parts.rows.map((r) => String(r.name))),
    checkpointTable,
  };
}

export interface TablePlan {
  readonly statements: string[];
  /** Differences left alone (never destructive), for the log. */
  readonly warnings: string[];
  /** Columns the table has with another type than the layout's (left as they are). */
  readonly retyped: string[];
}

/** The DDL that brings `state` to `layout`; throws when the existing table cannot be adopted. */
export function planTable(layout: TableLayout, state: TableState): TablePlan {
  const statements: string[] = [];
  const warnings: string[] = [];
  const retyped: string[] = [];
  const { schema, table, granularity, timeColumn } = layout;
  const target = qualified(schema, table);
  if (!state.schemaExists) statements.push(`CREATE SCHEMA IF NOT EXISTS ${ident(schema)}`);
  if (state.relkind === undefined) {
    const cols = layout.columns.map((c) => `  ${ident(c.name)} ${c.type}`).join(',\n');
    const by = granularity && timeColumn ? ` PARTITION BY RANGE (${ident(timeColumn)})` : '';
    statements.push(`CREATE TABLE ${target} (\n${cols}\n)${by}`);
    statements.push(`COMMENT ON TABLE ${target} IS ${literal(layoutComment(layout))}`);
    if (by)
      statements.push(`CREATE TABLE ${qualified(schema, defaultPartitionName(table))} PARTITION OF ${target} DEFAULT`);
  } else {
    checkAdoptable(layout, state);
    for (const column of layout.columns) {
      const existing = state.columns.get(column.name);
      if (existing === undefined) {
        statements.push(`ALTER TABLE ${target} ADD COLUMN IF NOT EXISTS ${ident(column.name)} ${column.type}`);
      } else if (!sameType(existing, column.type)) {
        warnings.push(`column ${column.name} is ${existing}, the record schema asks for ${column.type}; left as it is`);
        retyped.push(column.name);
      }
    }
    if (granularity && !state.partitions.has(defaultPartitionName(table))) {
      statements.push(
        `CREATE TABLE IF NOT EXISTS ${qualified(schema, defaultPartitionName(table))} PARTITION OF ${target} DEFAULT`,
      );
    }
  }
  for (const index of wantedIndexes(layout)) {
    if (state.indexes.has(index.name)) continue;
    const cols = index.columns.map(ident).join(', ');
    statements.push(
      `CREATE ${index.unique ? 'UNIQUE ' : ''}INDEX IF NOT EXISTS ${ident(index.name)} ON ${target} USING ${index.method} (${cols})`,
    );
  }
  if (!state.checkpointTable) statements.push(checkpointTableDdl(schema));
  return { statements, warnings, retyped };
}

export function checkpointTableDdl(schema: string): string {
  return `CREATE TABLE IF NOT EXISTS ${qualified(schema, CHECKPOINT_TABLE)} (
  pipeline text NOT NULL,
  sink text NOT NULL,
  snapshot_id bigint NOT NULL,
  positions jsonb NOT NULL,
  committed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (pipeline, sink)
)`;
}

function checkAdoptable(layout: TableLayout, state: TableState): void {
  const name = `${layout.schema}.${layout.table}`;
  const wantPartitioned = layout.granularity !== undefined;
  if ((state.relkind === 'p') !== wantPartitioned) {
    throw new EtlError(
      'ETL_CFG_INVALID',
      `table ${name} exists and is ${state.relkind === 'p' ? '' : 'not '}partitioned, but the sink asks for ` +
        `partition: ${layout.granularity ?? 'none'}; use another table or match the existing layout`,
    );
  }
  if (wantPartitioned && state.comment?.startsWith('etl:') && state.comment !== layoutComment(layout)) {
    throw new EtlError(
      'ETL_CFG_INVALID',
      `table ${name} was created with "${state.comment}", the sink asks for partition: ${layout.granularity}; ` +
        'the granularity of a partitioned table cannot change',
    );
  }
  if (layout.timeColumn && wantPartitioned && !state.columns.has(layout.timeColumn)) {
    throw new EtlError('ETL_CFG_INVALID', `table ${name} has no column ${layout.timeColumn} to partition on`);
  }
}

const TYPE_ALIASES: Readonly<Record<string, string>> = {
  timestamptz: 'timestamp with time zone',
  'double precision': 'double precision',
};

function sameType(existing: string, wanted: string): boolean {
  return existing === wanted || existing === TYPE_ALIASES[wanted];
}

interface WantedIndex {
  readonly name: string;
  readonly columns: readonly string[];
  readonly method: string;
  readonly unique: boolean;
}

export function wantedIndexes(layout: TableLayout): WantedIndex[] {
  const out: WantedIndex[] = [];
  const add = (columns: readonly string[], method: string, unique: boolean) => {
    const name = indexName(layout.table, columns, unique ? 'key' : method);
    if (!out.some((i) => i.name === name)) out.push({ name, columns, method, unique });
  };
  if (layout.timeColumn) add([layout.timeColumn], 'brin', false);
  for (const index of layout.indexes) add(index.columns, index.method, false);
  if (layout.uniqueKey) add(layout.uniqueKey, 'btree', true);
  return out;
}

/** `<table>_<columns>_<suffix>`, shortened with a hash to PostgreSQL's 63-byte limit. */
export function indexName(table: string, columns: readonly string[], suffix: string): string {
  const name = `${table}_${columns.join('_')}_${suffix}`;
  if (name.length <= 63) return name;
  const hash = createHash('sha1').update(name).digest('hex').slice(0, 8);
  return `${name.slice(0, 54)}_${hash}`;
}

/** The target of a COPY: the table and its columns, quoted. */
export function copyTarget(table: string, columns: readonly string[]): string {
  return `${table} (${columns.map(ident).join(', ')})`;
}
