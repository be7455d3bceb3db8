/**
 * `etl query "<sql>"`: runs SQL on the storage a pipeline loads into, through the first of its sinks that
 * answers SQL (a postgres sink: its `url`, or its embedded database under `<data_dir>/pgdata`); without a
 * pipeline, `--url`, else DATABASE_URL, else the embedded database under `.etl/pgdata`. Passwords and
 * `${secret:…}` values are never printed.
 */
import { stringify } from 'csv-stringify/sync';
import { loadPipelines } from '../../config/load.ts';
import { formatDiagnostic, hasErrors } from '../../diagnostics.ts';
import { errorMessage } from '../../errors.ts';
import type { OperatorDefinition, QueryableStorage, QuerySession, QueryTable } from '../../operator.ts';
import { redact } from '../../redact.ts';

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
  readonly storage: QueryableStorage;
  readonly options: Record<string, unknown>;
  readonly dataDir: string;
  /** Values of the pipeline's `${secret:…}` variables, masked in messages. */
  readonly secrets: readonly string[];
}

export async function runQuery(sql: string, options: QueryOptions): Promise<number> {
  const err = options.err ?? process.stderr;
  const env = options.env ?? process.env;
  let located: Located;
  try {
    located = await locate(options);
  } catch (error) {
    err.write(`etl query: ${redact(errorMessage(error), [])}\n`);
    return 1;
  }
  const mask = (text: string) => redact(text, located.secrets);
  let session: QuerySession | undefined;
  try {
    session = await located.storage.open(located.options, { dataDir: located.dataDir, env });
  } catch (error) {
    err.write(`etl query: ${mask(errorMessage(error))}\n`);
    return 1;
  }
  try {
    const results = await session.script(sql);
    const withRows = results.filter((r) => r.fields.length > 0);
    if (options.format === 'table' && withRows.length > 1) {
      // Several statements: a table each, in order.
      options.out.write(withRows.map((r) => render(r, 'table')).join('\n'));
      return 0;
    }
    if (withRows.length > 1) {
      err.write(
        `etl query: ${withRows.length} statements returned rows; --format ${options.format} shows the last one's\n`,
      );
    }
    options.out.write(render(withRows.at(-1) ?? results.at(-1), options.format));
    return 0;
  } catch (error) {
    err.write(`etl query (${mask(session.label)}): ${mask(errorMessage(error))}\n`);
    return 1;
  } finally {
    await session.close().catch(() => {});
  }
}

async function locate(options: QueryOptions): Promise<Located> {
  if (!options.pipeline) {
    const { registry } = await import('../../../operators/all.ts');
    const storage = queryable(registry)[0];
    if (!storage) throw new Error('no operator answers SQL');
    return { storage, options: options.url ? { url: options.url } : {}, dataDir: '.etl', secrets: [] };
  }
  const { pipelines, diagnostics } = await loadPipelines([options.pipeline]);
  if (hasErrors(diagnostics)) {
    throw new Error(`cannot read ${options.pipeline}:\n${diagnostics.map(formatDiagnostic).join('\n')}`);
  }
  for (const spec of pipelines) {
    for (const stage of spec.stages) {
      const storage = stage.kind === 'sink' ? queryable([stage.definition])[0] : undefined;
      if (!storage) continue;
      const stageOptions = options.url ? { ...stage.options, url: options.url } : stage.options;
      return { storage, options: stageOptions, dataDir: spec.settings.dataDir, secrets: spec.secrets };
    }
  }
  throw new Error(`${options.pipeline} has no sink that answers SQL (postgres); pass --url or set DATABASE_URL`);
}

function queryable(definitions: readonly OperatorDefinition[]): QueryableStorage[] {
  return definitions.flatMap((d) => (d.kind === 'sink' && d.query ? [d.query as QueryableStorage] : []));
}

function render(result: QueryTable | undefined, format: QueryOptions['format']): string {
  if (!result) return '';
  const { fields, rows } = result;
  if (format === 'json') {
    // Objects need distinct keys: a repeated name gets its position (`count`, `count_2`), as no value is lost.
    const keys = distinctNames(fields);
    const objects = rows.map((row) => Object.fromEntries(keys.map((key, i) => [key, row[i]])));
    return `${JSON.stringify(objects, jsonValue, 2)}\n`;
  }
  if (format === 'csv') {
    return stringify(
      rows.map((row) => row.map(cell)),
      { header: true, columns: [...fields] },
    );
  }
  if (fields.length === 0)
    return `${result.command ?? 'OK'}${result.rowCount === undefined ? '' : ` ${result.rowCount}`}\n`;
  return table(fields, rows);
}

function distinctNames(fields: readonly string[]): string[] {
  const seen = new Map<string, number>();
  return fields.map((name) => {
    const n = (seen.get(name) ?? 0) + 1;
    seen.set(name, n);
    return n === 1 ? name : `${name}_${n}`;
  });
}

/** psql-style aligned output; numbers right-aligned. */
function table(fields: readonly string[], rows: ReadonlyArray<readonly unknown[]>): string {
  const cells = rows.map((row) => row.map(cell));
  const numeric = fields.map((_, i) => rows.length > 0 && rows.every((r) => r[i] === null || isNumber(r[i])));
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

/** 64-bit integers: numbers when exact, else strings. */
function jsonValue(_key: string, value: unknown): unknown {
  if (typeof value !== 'bigint') return value;
  return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
    ? Number(value)
    : value.toString();
}

function bigintSafe(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}
