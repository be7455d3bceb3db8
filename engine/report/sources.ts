/**
 * Where a report reads from: for each pipeline, the database of its SQL-answering sink (as `etl query` opens
 * it), the tables its sinks fill with their columns, and the dead-letter files its file sinks write. Pipelines
 * that load into the same database share one session.
 */
import type { PipelineSpec } from '../config/types.ts';
import type { QueryableStorage, QuerySession } from '../operator.ts';

export interface StoredTable {
  /** Quoted, schema-qualified, ready for SQL. */
  readonly sql: string;
  readonly name: string;
  readonly columns: ReadonlySet<string>;
  readonly session: QuerySession;
  readonly pipeline: string;
  /** The output ports the sink reads (`default`, `threats`, …): what kind of records the table holds. */
  readonly ports: ReadonlySet<string>;
}

export interface DeadLetterFile {
  readonly pipeline: string;
  readonly path: string;
}

export interface Sources {
  readonly tables: readonly StoredTable[];
  readonly deadLetters: readonly DeadLetterFile[];
  /** Sink tables that a pipeline declares but its database does not hold yet (never applied). */
  readonly absent: readonly string[];
  close(): Promise<void>;
}

export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

export async function openSources(
  pipelines: readonly PipelineSpec[],
  options: { readonly url?: string; readonly env: NodeJS.ProcessEnv },
): Promise<Sources> {
  const sessions = new Map<string, QuerySession>();
  const tables: StoredTable[] = [];
  const absent: string[] = [];
  const deadLetters: DeadLetterFile[] = [];
  const closeAll = async () => {
    await Promise.all([...sessions.values()].map((s) => s.close().catch(() => {})));
  };
  try {
    for (const spec of pipelines) {
      for (const stage of spec.stages) {
        if (stage.kind !== 'sink') continue;
        const path = stage.options.path;
        if (stage.type === 'file' && typeof path === 'string' && stage.inputs.some((i) => i.port === 'dead_letter')) {
          deadLetters.push({ pipeline: spec.name, path });
        }
        const storage =
          stage.definition.kind === 'sink' ? (stage.definition.query as QueryableStorage | undefined) : undefined;
        const table = stage.options.table;
        if (!storage || typeof table !== 'string') continue;
        const stageOptions = options.url ? { ...stage.options, url: options.url } : stage.options;
        // The same database is opened once: same URL (or embedded data directory) and schema.
        const key = JSON.stringify([
          stageOptions.url ?? options.env.DATABASE_URL ?? null,
          stageOptions.url || options.env.DATABASE_URL ? null : spec.settings.dataDir,
          stage.options.schema ?? null,
        ]);
        let session = sessions.get(key);
        if (!session) {
          session = await storage.open(stageOptions, { dataDir: spec.settings.dataDir, env: options.env });
          sessions.set(key, session);
        }
        const schema = typeof stage.options.schema === 'string' ? literal(stage.options.schema) : 'current_schema()';
        const [result] = await session.script(
          `SELECT column_name FROM information_schema.columns WHERE table_schema = ${schema} AND table_name = ${literal(table)}`,
        );
        const columns = new Set((result?.rows ?? []).map((row) => String(row[0])));
        if (columns.size === 0) {
          absent.push(`${table} (${spec.name})`);
          continue;
        }
        const qualified =
          typeof stage.options.schema === 'string' ? `${ident(stage.options.schema)}.${ident(table)}` : ident(table);
        tables.push({
          sql: qualified,
          name: table,
          columns,
          session,
          pipeline: spec.name,
          ports: new Set(stage.inputs.map((i) => i.port)),
        });
      }
    }
  } catch (error) {
    await closeAll();
    throw error;
  }
  return { tables, deadLetters, absent, close: closeAll };
}

/** The rows of one statement, 64-bit integers as numbers (counts in a report fit in 2^53). */
export async function rows(session: QuerySession, sql: string): Promise<unknown[][]> {
  const results = await session.script(sql);
  const last = results.at(-1);
  return (last?.rows ?? []).map((row) => row.map((value) => (typeof value === 'bigint' ? Number(value) : value)));
}
