/** Which failures mean "the transaction is gone, reconnect and replay" versus "this data is refused". */
import { isRetriable } from '../../../engine/errors.ts';

// node-postgres reports a dropped socket with these messages and no SQLSTATE.
const LOST_CONNECTION =
  /Connection terminated|not queryable|Connection ended|timeout expired|timeout exceeded when trying to connect|ECONNRESET|ECONNREFUSED|EPIPE/i;

/**
 * A connection loss (or a server shutting down, deadlock, serialization failure): the transaction cannot
 * continue, but the same work on a new connection can succeed.
 */
export function isConnectionLoss(error: unknown): boolean {
  if (isRetriable(error)) return true;
  const code = (error as { code?: unknown } | null)?.code;
  if (code === '57P02' || code === '57P05') return true;
  if (error instanceof AggregateError) return error.errors.some(isConnectionLoss);
  return error instanceof Error && LOST_CONNECTION.test(error.message);
}

/** PostgreSQL refused some value (SQLSTATE classes 22 data exception, 23 integrity, 54 limits). */
export function isDataError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23') || code.startsWith('54'));
}
