/** Live figures of one run, for progress, the summary and tests. */
export interface RunStats {
  pipeline: string;
  elapsedMs: number;
  /** Records read by sources. */
  recordsIn: number;
  /** Records acknowledged by sinks (every sink counts its own). */
  recordsOut: number;
  /** Records routed to a dead_letter port. */
  rejected: number;
  /** Stage failures (whole batches), retries included. */
  errors: number;
  bytesRead: number;
  /** Known size of finite inputs, for percent and ETA. */
  bytesTotal?: number;
  /** Checkpoints committed in this run. */
  checkpoints: number;
  /** Records acknowledged, by sink id. */
  sinks: Record<string, number>;
}

export function emptyStats(pipeline: string): RunStats {
  return {
    pipeline,
    elapsedMs: 0,
    recordsIn: 0,
    recordsOut: 0,
    rejected: 0,
    errors: 0,
    bytesRead: 0,
    checkpoints: 0,
    sinks: {},
  };
}
