/**
 * `etl query` on the database a postgres sink loads into: its `url`, else DATABASE_URL, else the embedded
 * database under `<data_dir>/pgdata`, with the sink's schema first on the search_path.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { EtlError, errorMessage } from '../../../engine/errors.ts';
import type { QueryableStorage, QueryTable } from '../../../engine/operator.ts';
import { ident, openDatabase, resolveTarget, type ScriptResult, targetLabel } from './driver.ts';
import type { PostgresSinkOptions } from './schema.ts';

const INT8_OID = 20;

export const queryable: QueryableStorage<PostgresSinkOptions> = {
  async open(options, { dataDir, env }) {
    const target = resolveTarget(options.url, dataDir, env);
    if (target.kind === 'embedded' && !existsSync(join(target.dir, 'PG_VERSION'))) {
      // Opening would create an empty database, only to say the table does not exist.
      throw new EtlError(
        'ETL_QUERY_NO_STORAGE',
        `no embedded database in ${target.dir}: \`etl apply\` on the pipeline loads one (or pass --url, or set ` +
          'DATABASE_URL, to query a server)',
      );
    }
    const database = await openDatabase(target, {
      poolMaxConnections: 1,
      connectTimeoutMs: 10_000,
      applicationName: 'etl query',
    });
    try {
      const session = await database.session();
      if (options.schema) await session.query(`SET search_path TO ${ident(options.schema)}, public`);
      return {
        label: targetLabel(target),
        script: async (sql) => (await session.script(sql)).map(table),
        close: async () => {
          session.release();
          await database.close();
        },
      };
    } catch (error) {
      await database.close().catch(() => {});
      throw new Error(`${targetLabel(target)}: ${errorMessage(error)}`, { cause: error });
    }
  },
};

/** The server sends int8 (count(*)) as text and PGlite as bigint: bigint either way. */
function table(result: ScriptResult): QueryTable {
  const int8 = result.fieldTypes.flatMap((type, i) => (type === INT8_OID ? [i] : []));
  const rows =
    int8.length === 0
      ? result.rows
      : result.rows.map((row) => {
          const out = [...row];
          for (const i of int8) {
            const value = out[i];
            if (typeof value === 'string') out[i] = BigInt(value);
          }
          return out;
        });
  return {
    fields: result.fields,
    rows,
    ...(result.command === undefined ? {} : { command: result.command }),
    ...(result.rowCount === undefined ? {} : { rowCount: result.rowCount }),
  };
}
