/**
 * Where keys and the audit log live: PostgreSQL, the embedded one under `<data_dir>/security/pgdata` by
 * default or a server (`postgres_url`) that several daemons share. Tables are in schema `etl_security`;
 * the audit table refuses UPDATE, DELETE and TRUNCATE with a trigger, so rows are only ever added.
 */
import { join } from 'node:path';
import {
  type Database,
  type DatabaseTarget,
  embeddedDir,
  openDatabase,
  type Session,
  targetLabel,
} from '../../database.ts';
import { generateKey, type Role } from './keys.ts';

export interface StoreLocation {
  /** A PostgreSQL server shared by daemons; without it, the embedded database in `dataDir`. */
  readonly postgresUrl?: string | undefined;
  readonly dataDir: string;
}

export interface KeyRow {
  readonly id: string;
  readonly name: string;
  readonly role: Role;
  readonly hash: string;
  readonly createdAt: string;
  readonly revokedAt: string | null;
}

export type KeyInfo = Omit<KeyRow, 'hash'>;

export type AuditOutcome = 'ok' | 'failed' | 'unauthenticated' | 'forbidden' | 'rate_limited';

export interface AuditEntry {
  readonly keyId: string | null;
  readonly keyName: string | null;
  readonly role: Role | null;
  readonly method: string;
  /** The request's path and query string, secrets masked. */
  readonly path: string;
  /** The route's pattern (`/pipelines/:name`), when one matched. */
  readonly route: string | null;
  readonly ip: string;
  readonly status: number;
  readonly outcome: AuditOutcome;
  readonly reason: string | null;
  readonly requestId: string;
}

export interface AuditRecord extends AuditEntry {
  readonly seq: number;
  readonly at: string;
}

export interface AuditFilter {
  readonly keyId?: string | undefined;
  readonly outcome?: AuditOutcome | undefined;
  readonly method?: string | undefined;
  readonly status?: number | undefined;
  /** ISO 8601 times, inclusive / exclusive. */
  readonly since?: string | undefined;
  readonly until?: string | undefined;
  /** Only entries before this sequence number (paging backwards). */
  readonly beforeSeq?: number | undefined;
  readonly limit: number;
}

const SCHEMA = `
SELECT pg_advisory_xact_lock(hashtext('etl_security schema'));
CREATE SCHEMA IF NOT EXISTS etl_security;
CREATE TABLE IF NOT EXISTS etl_security.api_keys (
  id text PRIMARY KEY,
  name text NOT NULL,
  role text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
  hash text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);
CREATE TABLE IF NOT EXISTS etl_security.audit (
  seq bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT clock_timestamp(),
  key_id text,
  key_name text,
  role text,
  method text NOT NULL,
  path text NOT NULL,
  route text,
  ip text NOT NULL,
  status integer NOT NULL,
  outcome text NOT NULL,
  reason text,
  request_id text NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_at ON etl_security.audit (at);
CREATE INDEX IF NOT EXISTS audit_key ON etl_security.audit (key_id, seq);
CREATE OR REPLACE FUNCTION etl_security.refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'etl_security.audit is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE OR REPLACE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON etl_security.audit
  FOR EACH ROW EXECUTE FUNCTION etl_security.refuse_audit_change();
CREATE OR REPLACE TRIGGER audit_no_truncate BEFORE TRUNCATE ON etl_security.audit
  FOR EACH STATEMENT EXECUTE FUNCTION etl_security.refuse_audit_change();
`;

export function storeTarget(location: StoreLocation): DatabaseTarget {
  return location.postgresUrl
    ? { kind: 'server', url: location.postgresUrl }
    : { kind: 'embedded', dir: embeddedDir(join(location.dataDir, 'security')) };
}

export class SecurityStore {
  readonly label: string;
  private readonly database: Database;

  private constructor(database: Database, label: string) {
    this.database = database;
    this.label = label;
  }

  /** Opens the database and creates the tables when missing (safe for several daemons at once). */
  static async open(location: StoreLocation, applicationName = 'etl security'): Promise<SecurityStore> {
    const target = storeTarget(location);
    const database = await openDatabase(target, { poolMaxConnections: 4, connectTimeoutMs: 10_000, applicationName });
    const store = new SecurityStore(database, targetLabel(target));
    try {
      await store.with(async (session) => {
        // BEGIN and COMMIT as statements of their own: the embedded driver holds its one backend for this
        // session from a statement that begins a transaction to one that ends it.
        await session.query('BEGIN');
        try {
          await session.script(SCHEMA);
          await session.query('COMMIT');
        } catch (error) {
          await session.query('ROLLBACK').catch(() => {});
          throw error;
        }
      });
      return store;
    } catch (error) {
      await database.close().catch(() => {});
      throw error;
    }
  }

  async createKey(name: string, role: Role): Promise<KeyInfo & { key: string }> {
    const made = await generateKey();
    const { rows } = await this.with((s) =>
      s.query(
        `INSERT INTO etl_security.api_keys (id, name, role, hash) VALUES ($1, $2, $3, $4)
         RETURNING ${KEY_COLUMNS}`,
        [made.id, name, role, made.hash],
      ),
    );
    return { ...keyInfo(rows[0] as Row), key: made.key };
  }

  async findKey(id: string): Promise<KeyRow | undefined> {
    const { rows } = await this.with((s) =>
      s.query(`SELECT ${KEY_COLUMNS}, hash FROM etl_security.api_keys WHERE id = $1`, [id]),
    );
    const row = rows[0];
    return row ? { ...keyInfo(row), hash: String(row.hash) } : undefined;
  }

  async listKeys(includeRevoked = false): Promise<KeyInfo[]> {
    const { rows } = await this.with((s) =>
      s.query(
        `SELECT ${KEY_COLUMNS} FROM etl_security.api_keys ${includeRevoked ? '' : 'WHERE revoked_at IS NULL'}
         ORDER BY created_at, id`,
      ),
    );
    return rows.map(keyInfo);
  }

  /** The key as revoked, or undefined when no key has this id; revoking twice keeps the first time. */
  async revokeKey(id: string): Promise<KeyInfo | undefined> {
    const { rows } = await this.with((s) =>
      s.query(
        `UPDATE etl_security.api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
         RETURNING ${KEY_COLUMNS}`,
        [id],
      ),
    );
    return rows[0] ? keyInfo(rows[0]) : undefined;
  }

  async appendAudit(entry: AuditEntry): Promise<void> {
    await this.with((s) =>
      s.query(
        `INSERT INTO etl_security.audit
           (key_id, key_name, role, method, path, route, ip, status, outcome, reason, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        [
          entry.keyId,
          entry.keyName,
          entry.role,
          entry.method,
          entry.path,
          entry.route,
          entry.ip,
          entry.status,
          entry.outcome,
          entry.reason,
          entry.requestId,
        ],
      ),
    );
  }

  /** Newest first. */
  async queryAudit(filter: AuditFilter): Promise<AuditRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, value: unknown) => {
      params.push(value);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (filter.keyId !== undefined) add('key_id = ?', filter.keyId);
    if (filter.outcome !== undefined) add('outcome = ?', filter.outcome);
    if (filter.method !== undefined) add('method = ?', filter.method.toUpperCase());
    if (filter.status !== undefined) add('status = ?', filter.status);
    if (filter.since !== undefined) add('at >= ?::timestamptz', filter.since);
    if (filter.until !== undefined) add('at < ?::timestamptz', filter.until);
    if (filter.beforeSeq !== undefined) add('seq < ?', filter.beforeSeq);
    params.push(filter.limit);
    const { rows } = await this.with((s) =>
      s.query(
        // seq is int8: a string from a server, a bigint from PGlite; Number() takes either.
        `SELECT seq, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at, key_id,
                key_name, role, method, path, route, ip, status, outcome, reason, request_id
         FROM etl_security.audit ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY seq DESC LIMIT $${params.length}`,
        params,
      ),
    );
    return rows.map((r) => ({
      seq: Number(r.seq),
      at: String(r.at),
      keyId: nullable(r.key_id),
      keyName: nullable(r.key_name),
      role: nullable(r.role) as Role | null,
      method: String(r.method),
      path: String(r.path),
      route: nullable(r.route),
      ip: String(r.ip),
      status: Number(r.status),
      outcome: String(r.outcome) as AuditOutcome,
      reason: nullable(r.reason),
      requestId: String(r.request_id),
    }));
  }

  /** Idempotent. */
  close(): Promise<void> {
    return this.database.close();
  }

  private async with<T>(work: (session: Session) => Promise<T>): Promise<T> {
    const session = await this.database.session();
    try {
      return await work(session);
    } finally {
      session.release();
    }
  }
}

type Row = Record<string, unknown>;

const TIME = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
const KEY_COLUMNS = `id, name, role, ${TIME('created_at')} AS created_at, ${TIME('revoked_at')} AS revoked_at`;

function keyInfo(row: Row): KeyInfo {
  return {
    id: String(row.id),
    name: String(row.name),
    role: String(row.role) as Role,
    createdAt: String(row.created_at),
    revokedAt: nullable(row.revoked_at),
  };
}

function nullable(value: unknown): string | null {
  return value === null || value === undefined ? null : String(value);
}
