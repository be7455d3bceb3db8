/**
 * `etl query "<sql>"`: runs SQL on the database a pipeline loads into: the `url` of the pipeline's
 * postgres sink, or its embedded database under `<data_dir>/pgdata`; without a pipeline, `--url`, else
 * DATABASE_URL, else the embedded database under `.etl/pgdata`. Passwords are never printed.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { loadPipelines } from '../../config/load.ts';
import { formatDiagnostic, hasErrors } from '../../diagnostics.ts';
import { errorMessage } from '../../errors.ts';
import {
  type DatabaseTarget,
  ident,
  maskUrl,
  openDatabase,
  type QueryResult,
  resolveTarget,
  targetLabel,
} from '../../../operators/sinks/postgres/driver.ts';

export interface QueryOptions {
  pipeline?: string;
  url?: string;
  format: 'table' | 'csv' | 'json';
  out: NodeJS.WritableStream;
  /** Where errors go; default stderr. */
  err?: NodeJS.WritableStream;
  env?: NodeJS.ProcessEnv;
}

interface Located {
  readonly target: DatabaseTarget;
  /** Schema of the pipeline's table, put first on the search_path. */
  readonly schema?: string;
}

export async function runQuery(sql: string, options: QueryOptions): Promise<number> {
  const err = options.err ?? process.stderr;
  const env = options.env ?? process.env;
  let located: Located;
  try {
    located = await locate(options, env);
  } catch (error) {
    err.write(`etl query: ${errorMessage(error)}\n`);
    return 1;
  }
  if (located.target.kind === 'embedded' && !existsSync(join(located.target.dir, 'PG_VERSION'))) {
    // Opening would create an empty database, only to say the table does not exist.
    const apply = options.pipeline ? `etl apply ${options.pipeline}` : '`etl apply` on a pipeline';
    err.write(
      `etl query: no embedded database in ${located.target.dir}: ${apply} loads one ` +
        '(or pass --url, or set DATABASE_URL, to query a server)\n',
    );
    return 1;
  }
  let database: Awaited<ReturnType<typeof openDatabase>> | undefined;
  try {
    database = await openDatabase(located.target, {
      poolMaxConnections: 1,
      connectTimeoutMs: 10_000,
      applicationName: 'etl query',
    });
    const session = await database.session();
    try {
      if (located.schema) await session.query(`SET search_path TO ${ident(located.schema)}, public`);
      const results = await session.script(sql);
      const shown = [...results].reverse().find((r) => r.fields.length > 0) ?? results.at(-1);
      options.out.write(render(shown, options.format));
    } finally {
      session.release();
    }
    return 0;
  } catch (error) {
    err.write(`etl query (${targetLabel(located.target)}): ${maskSecrets(errorMessage(error))}\n`);
    return 1;
  } finally {
    await database?.close().catch(() => {});
  }
}

async function locate(options: QueryOptions, env: NodeJS.ProcessEnv): Promise<Located> {
  if (options.url) return { target: { kind: 'server', url: options.url } };
  if (!options.pipeline) return { target: resolveTarget(undefined, '.etl', env) };
  const { pipelines, diagnostics } = await loadPipelines([options.pipeline]);
  if (hasErrors(diagnostics)) {
    throw new Error(`cannot read ${options.pipeline}:\n${diagnostics.map(formatDiagnostic).join('\n')}`);
  }
  for (const spec of pipelines) {
    const stage = spec.stages.find((s) => s.kind === 'sink' && s.type === 'postgres');
    if (!stage) continue;
    const url = typeof stage.options.url === 'string' ? stage.options.url : undefined;
    const schema = typeof stage.options.schema === 'string' ? stage.options.schema : undefined;
    const target = resolveTarget(url, spec.settings.dataDir, env);
    return schema === undefined ? { target } : { target, schema };
  }
  throw new Error(`${options.pipeline} has no postgres sink; pass --url or set DATABASE_URL`);
}

function render(result: QueryResult | undefined, format: QueryOptions['format']): string {
  if (!result) return '';
  const { fields, rows } = result;
  if (format === 'json')
    return `${JSON.stringify(
      rows.map((r) => withInt8Numbers(r, result)),
      jsonValue,
      2,
    )}\n`;
  if (format === 'csv') {
    return stringify(
      rows.map((row) => fields.map((f) => cell(row[f]))),
      { header: true, columns: [...fields] },
    );
  }
  if (fields.length === 0)
    return `${result.command ?? 'OK'}${result.rowCount === undefined ? '' : ` ${result.rowCount}`}\n`;
  return table(fields, rows);
}

/** psql-style aligned output; numbers right-aligned. */
function table(fields: readonly string[], rows: Record<string, unknown>[]): string {
  const cells = rows.map((row) => fields.map((f) => cell(row[f])));
  const numeric = fields.map((f) => rows.length > 0 && rows.every((r) => r[f] === null || isNumber(r[f])));
  const widths = fields.map((f, i) => Math.max(f.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (values: string[], header: boolean) =>
    ` ${values
      .map((v, i) => {
        const w = widths[i] as number;
        return header ? v.padEnd(w) : numeric[i] ? v.padStart(w) : v.padEnd(w);
      })
      .join(' | ')}`.trimEnd();
  const out = [line([...fields], true), widths.map((w) => '-'.repeat(w + 2)).join('+')];
  for (const c of cells) out.push(line(c, false));
  out.push(`(${rows.length} ${rows.length === 1 ? 'row' : 'rows'})`);
  return `${out.join('\n')}\n`;
}

function isNumber(value: unknown): boolean {
  return (
    typeof value === 'number' ||
    typeof value === 'bigint' ||
    (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value))
  );
}

function cell(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'object') return JSON.stringify(value, bigintSafe);
  return String(value);
}

const INT8_OID = 20;

/** The server sends int8 (e.g. count(*)) as text: JSON gets numbers where they are exact, as with PGlite. */
function withInt8Numbers(row: Record<string, unknown>, result: QueryResult): Record<string, unknown> {
  if (!result.fieldTypes.includes(INT8_OID)) return row;
  const out = { ...row };
  result.fields.forEach((field, i) => {
    const value = out[field];
    if (result.fieldTypes[i] === INT8_OID && typeof value === 'string') out[field] = jsonValue(field, BigInt(value));
  });
  return out;
}

/** int8 values PGlite returns as bigint: numbers when exact, else strings. */
function jsonValue(_key: string, value: unknown): unknown {
  if (typeof value !== 'bigint') return value;
  return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
    ? Number(value)
    : value.toString();
}

function bigintSafe(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

/** Error messages may quote a connection string. */
function maskSecrets(message: string): string {
  return message.replace(/postgres(?:ql)?:\/\/[^\s'"]+/g, (url) => maskUrl(url));
}
