/** Shared fixtures of the postgres suites: options with defaults, an operator context, both database targets. */
import { detachedState } from '../../engine/runtime/noop.ts';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import pg from 'pg';
import type { Logger, OperatorContext, Sink, SinkWriteContext } from '../../engine/operator.ts';
import type { EtlRecord } from '../../engine/record.ts';
import type { RecordSchema } from '../../engine/record-schema.ts';
import { accessRecordSchema } from '../../operators/shared/log-records.ts';
import { type Database, openDatabase } from '../../operators/sinks/postgres/driver.ts';
import { createPostgresSink } from '../../operators/sinks/postgres/postgres.ts';
import { type PostgresSinkOptions, schema } from '../../operators/sinks/postgres/schema.ts';

export const PG_URL = process.env.ETL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const ajv = new Ajv({ useDefaults: true, strict: true, allErrors: true });
const validateOptions = ajv.compile(schema);

/** Options as the loader hands them over: validated, defaults applied. */
export function sinkOptions(patch: Partial<PostgresSinkOptions> = {}): PostgresSinkOptions {
  const options = structuredClone(patch) as Record<string, unknown>;
  if (!validateOptions(options)) throw new Error(ajv.errorsText(validateOptions.errors));
  return options as unknown as PostgresSinkOptions;
}

export interface TestContext extends OperatorContext {
  readonly logs: Array<{ level: string; message: string }>;
  checkpointRequests: number;
}

/** A sink's context; its input carries access records, as when it reads a parse stage. */
export function testContext(
  dataDir: string,
  id = 'store',
  pipeline = 'test',
  inputSchema: RecordSchema = accessRecordSchema,
): TestContext {
  const logs: Array<{ level: string; message: string }> = [];
  const log =
    (level: string) =>
    (message: string): void => {
      logs.push({ level, message });
    };
  const logger: Logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
  const ctx: TestContext = {
    pipeline,
    id,
    logger,
    logs,
    signal: new AbortController().signal,
    dataDir,
    baseDir: dataDir,
    metrics: { counter: () => ({ inc() {} }), gauge: () => ({ set() {} }) },
    checkpointRequests: 0,
    readPorts: new Set(['default', 'dead_letter']),
    inputSchema,
    ...detachedState,
    requestCheckpoint() {
      ctx.checkpointRequests++;
    },
  };
  return ctx;
}

/** Collects dead letters as the runtime would. */
export class DeadLetters implements SinkWriteContext {
  readonly records: Array<{ record: EtlRecord; reason: string }> = [];
  deadLetter(record: EtlRecord, reason: string): void {
    this.records.push({ record, reason });
  }
}

export type Mode = 'server' | 'embedded';

/** One isolated place to load into: its own schema on the server, its own data directory when embedded. */
export class Target {
  readonly mode: Mode;
  readonly schema: string;
  readonly dataDir: string;
  private constructor(mode: Mode, schema: string, dataDir: string) {
    this.mode = mode;
    this.schema = schema;
    this.dataDir = dataDir;
  }

  static async create(mode: Mode): Promise<Target> {
    const dataDir = await mkdtemp(join(tmpdir(), 'etl-pg-'));
    return new Target(mode, `etl_test_${randomBytes(5).toString('hex')}`, dataDir);
  }

  options(patch: Partial<PostgresSinkOptions> = {}): PostgresSinkOptions {
    return sinkOptions({ schema: this.schema, ...(this.mode === 'server' ? { url: PG_URL } : {}), ...patch });
  }

  sink(options: PostgresSinkOptions, ctx: OperatorContext, now?: () => number): Sink {
    return createPostgresSink(options, ctx, now ? { env: {}, now } : { env: {} });
  }

  /** A connection of its own (for the embedded database: only while no sink holds it). */
  async database(): Promise<Database> {
    const target =
      this.mode === 'server'
        ? { kind: 'server' as const, url: PG_URL }
        : { kind: 'embedded' as const, dir: join(this.dataDir, 'pgdata') };
    return openDatabase(target, { poolMaxConnections: 1, connectTimeoutMs: 5000, applicationName: 'etl tests' });
  }

  async query(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]> {
    const db = await this.database();
    try {
      const session = await db.session();
      try {
        return (await session.query(sql, params)).rows;
      } finally {
        session.release();
      }
    } finally {
      await db.close();
    }
  }

  async dispose(): Promise<void> {
    if (this.mode === 'server') await serverQuery(`DROP SCHEMA IF EXISTS "${this.schema}" CASCADE`);
    await rm(this.dataDir, { recursive: true, force: true });
  }
}

export async function serverQuery(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as Record<string, unknown>[];
  } finally {
    await client.end();
  }
}

const AGENTS = ['curl/8.5.0', 'Mozilla/5.0 (X11; Linux x86_64)', 'Googlebot/2.1'];

/** An access record as the parse transform makes it. */
export function accessRecord(seq: number, timestamp: string, patch: Record<string, unknown> = {}): EtlRecord {
  return {
    client_ip: seq % 2 === 0 ? `10.0.${(seq >> 8) & 255}.${seq & 255}` : `2001:db8::${(seq & 0xffff).toString(16)}`,
    ident: null,
    user: null,
    timestamp,
    method: 'GET',
    path: `/item?seq=${seq}`,
    query: `seq=${seq}`,
    protocol: 'HTTP/1.1',
    status: 200 + (seq % 5),
    bytes: seq * 10,
    referrer: null,
    user_agent: AGENTS[seq % AGENTS.length],
    request_time_ms: seq % 7,
    vhost: 'example.com',
    port: 443,
    ...patch,
  };
}
