import type { RunStats as ProgressStats } from '../telemetry/types.ts';

/** Live figures of one run: what progress shows, plus what tests and the summary need. */
export interface RunStats extends ProgressStats {
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
