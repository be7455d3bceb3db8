/**
 * One error type with stable codes. Codes are never reused; `retriable` tells the shared retrier
 * whether trying again can help (a network blip can, a bad config cannot).
 */
export const ERROR_CODES = {
  // configuration (refused before anything runs)
  ETL_CFG_YAML: 'YAML syntax error',
  ETL_CFG_SCHEMA: 'document does not match the schema',
  ETL_CFG_UNKNOWN_KEY: 'unknown key',
  ETL_CFG_UNKNOWN_TYPE: 'unknown operator type',
  ETL_CFG_ENV: 'environment variable is not set',
  ETL_CFG_INVALID: 'invalid option value',
  ETL_CFG_SECRET: 'a secret option is not read from a secret variable',
  ETL_CFG_NOT_FOUND: 'pipeline file not found',
  ETL_GRAPH_UNKNOWN_INPUT: 'input names no stage or port',
  ETL_GRAPH_DUPLICATE_ID: 'duplicate stage id',
  ETL_GRAPH_CYCLE: 'the graph has a cycle',
  ETL_GRAPH_KIND_MISMATCH: 'stage cannot take the records of its input',
  ETL_GRAPH_UNREAD_OUTPUT: 'output read by no stage',
  ETL_GRAPH_NO_INPUT: 'stage has no input',
  ETL_GRAPH_NO_SINK: 'pipeline has no sink',
  ETL_GRAPH_NO_SOURCE: 'pipeline has no source',
  ETL_GRAPH_SHARED_TARGET: 'two sinks write the same file',
  ETL_GRAPH_PERSONAL_DATA: 'a port upstream of an anonymizing stage reaches a sink around it',
  ETL_GRAPH_ROW_KEY: 'a sink stores the corrected rows of a stage under another key, or not under one',
  ETL_CFG_DUPLICATE_PIPELINE: 'pipeline name already used',
  // runtime
  ETL_RUN_STAGE_FAILED: 'stage failed',
  ETL_RUN_SOURCE_FAILED: 'source failed',
  ETL_RUN_SINK_FAILED: 'sink failed',
  ETL_RUN_ABORTED: 'run aborted',
  ETL_RUN_RETRIES_EXHAUSTED: 'retries exhausted',
  ETL_RUN_CHECK_FAILED: 'a stage found the run below a threshold it was given',
  ETL_OUTPUT_CLOSED: 'the reader of standard output went away',
  ETL_AUDIT_FAILED: 'the run audit log could not be appended to',
  ETL_STATE_CORRUPT: 'checkpoint state is unreadable',
  ETL_STATE_IO: 'checkpoint state could not be written',
  ETL_STATE_MISMATCH: 'the checkpoint does not fit the pipeline',
  ETL_LOCKED: 'another process holds the lock',
  ETL_PARTITION_FENCED: 'a newer owner has claimed a partition this run was committing',
  ETL_RESOURCE_UNAVAILABLE: 'a shared resource cannot be reached',
  ETL_GRAPH_UNKNOWN_RESOURCE: 'an option names no shared resource of its type',
  ETL_GRAPH_UNKNOWN_FIELD: 'an option names a field the records reaching the stage do not carry',
  ETL_QUERY_NO_STORAGE: 'the storage to query does not exist yet',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class EtlError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;

  constructor(code: ErrorCode, message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EtlError';
    this.code = code;
    this.retriable = options.retriable ?? false;
  }
}

/** Programmer errors are never worth a retry. */
export function isRetriable(error: unknown): boolean {
  if (error instanceof EtlError) return error.retriable;
  if (
    error instanceof TypeError ||
    error instanceof RangeError ||
    error instanceof SyntaxError ||
    error instanceof ReferenceError
  ) {
    return false;
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    return (
      RETRIABLE_SYSTEM_CODES.has(code) ||
      code.startsWith('08') /* pg connection exception */ ||
      code === '57P01' ||
      code === '57P03' ||
      code === '40001' ||
      code === '40P01'
    );
  }
  return (error as { retriable?: unknown } | null)?.retriable === true;
}

const RETRIABLE_SYSTEM_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTCONN',
]);

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
