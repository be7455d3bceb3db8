/**
 * Lines that are not UTF-8, as a user loads them (`etl apply`, file → parse → postgres): the original bytes
 * are recoverable from PostgreSQL (`raw_base64`) and from the dead letters, and a cut binary line's reason
 * gives its size as read. Against the server and the embedded database.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../operators/sinks/postgres/driver.ts';
import { etl } from '../support/cli.ts';
import { type Mode, PG_URL, Target } from './helpers.ts';

const VALID = '10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /ok HTTP/1.1" 200 5 "-" "curl/8.0"';
// Latin-1 bytes in the path and the user agent: a line that parses, with text that is not UTF-8.
const LATIN1 = Buffer.from(
  '10.0.0.2 - - [10/Oct/2000:13:55:37 -0700] "GET /caf\xe9 HTTP/1.1" 200 5 "-" "M\xf6z"',
  'latin1',
);
const JUNK = Buffer.from([0x6a, 0x75, 0x6e, 0x6b, 0x20, 0xc3, 0x28, 0xff, 0x00, 0x5c, 0x78, 0x30, 0x30]); // `junk Ã(`, 0xFF, NUL, `\x00`

/** 199 KB of bytes that are not text, without a newline. */
function binaryLine(): Buffer {
  const bytes = Buffer.alloc(199 * 1024);
  for (let i = 0; i < bytes.length; i++) bytes[i] = 0x80 + ((i * 13) % 0x7f);
  return bytes;
}

/** Rows of `sql`, whose tables are qualified with the target's schema. */
async function query(target: Target, sql: string): Promise<Record<string, unknown>[]> {
  if (target.mode === 'server') return target.query(sql);
  // The CLI's embedded database: `.etl/pgdata` under the working directory.
  const db = await openDatabase(
    { kind: 'embedded', dir: join(target.dataDir, '.etl', 'pgdata') },
    { poolMaxConnections: 1, connectTimeoutMs: 5000, applicationName: 'etl tests' },
  );
  try {
    const session = await db.session();
    try {
      return (await session.query(sql)).rows;
    } finally {
      session.release();
    }
  } finally {
    await db.close();
  }
}

describe.each<Mode>(['server', 'embedded'])('bytes that are not UTF-8 (%s)', (mode) => {
  let target: Target;
  afterEach(async () => {
    await target.dispose();
  });

  it('are recoverable exactly from the table and from the dead letters; a cut line says its size', async () => {
    target = await Target.create(mode);
    const dir = target.dataDir;
    await mkdir(join(dir, 'logs'));
    const binary = binaryLine();
    const nl = Buffer.from('\n');
    await writeFile(
      join(dir, 'logs', 'a.log'),
      Buffer.concat([Buffer.from(VALID), nl, LATIN1, nl, binary, nl, JUNK, nl]),
    );
    const url = mode === 'server' ? `url: "${PG_URL}", ` : '';
    // Dead letters into PostgreSQL too on the server (an embedded database takes one sink).
    const rejected =
      mode === 'server'
        ? `    rejected: { type: postgres, inputs: [parsed.dead_letter], ${url}schema: ${target.schema}, table: rejects, time_column: time }\n`
        : '';
    await writeFile(
      join(dir, 'pipeline.yaml'),
      `apiVersion: etl/v1
kind: Pipeline
metadata: { name: raw-bytes }
spec:
  sources:
    logs: { type: file, paths: ['logs/*.log'] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
  sinks:
    warehouse: { type: postgres, inputs: [parsed], ${url}schema: ${target.schema}, table: access_logs }
${rejected}    rejects: { type: file, inputs: [parsed.dead_letter], path: rejects.jsonl }
`,
    );
    const run = await etl(['apply', '--no-progress', 'pipeline.yaml'], { cwd: dir });
    expect(run.code, run.stderr).toBe(0);

    const rows = await query(
      target,
      `SELECT path, user_agent, raw_base64 FROM "${target.schema}".access_logs ORDER BY client_ip`,
    );
    expect(rows.map((r) => [r.path, r.user_agent])).toEqual([
      ['/ok', 'curl/8.0'],
      ['/caf\uFFFD', 'M\uFFFDz'],
    ]);
    expect(rows[0]?.raw_base64).toBeNull();
    expect(Buffer.from(rows[1]?.raw_base64 as string, 'base64')).toEqual(LATIN1);

    const lines = (await readFile(join(dir, 'rejects.jsonl'), 'utf8')).trim().split('\n');
    const filed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const stored =
      mode === 'server'
        ? await query(
            target,
            `SELECT reason, raw, raw_base64 FROM "${target.schema}".rejects ORDER BY (origin->>'line')::int`,
          )
        : filed;
    for (const dead of [stored, filed]) {
      expect(dead).toHaveLength(2);
      const [cut, junk] = dead;
      expect(cut?.reason).toMatch(/\(the source cut this line of 203776 bytes at max_line_bytes \(65536\)\)$/);
      const head = Buffer.from(cut?.raw_base64 as string, 'base64');
      expect(head.length).toBeGreaterThan(65536 - 4);
      expect(head).toEqual(binary.subarray(0, head.length));
      expect(Buffer.from(junk?.raw_base64 as string, 'base64')).toEqual(JUNK);
    }
  });
});
