/**
 * PostgreSQL for engine code (the daemon's key and audit store): the postgres sink's driver, one
 * interface over a server (`pg`) and the embedded PGlite, reached through here rather than copied.
 */
export {
  type Database,
  type DatabaseTarget,
  embeddedDir,
  openDatabase,
  type QueryResult,
  type Session,
  targetLabel,
} from '../operators/sinks/postgres/driver.ts';
