import type { PipelineSpec } from '../config/types.ts';
import { DEAD_LETTER_PORT } from '../graph/graph.ts';
import type { Logger } from '../operator.ts';
import type { RunStats as ProgressStats } from '../telemetry/types.ts';

/** Live figures of one run: what progress shows, plus what tests and the summary need. */
export interface RunStats extends ProgressStats {
  /** Checkpoints committed in this run. */
  checkpoints: number;
}

export function emptyStats(spec: PipelineSpec): RunStats {
  const sinks: RunStats['sinks'] = {};
  for (const stage of spec.stages) {
    if (stage.kind !== 'sink') continue;
    const deadLetters = stage.inputs.length > 0 && stage.inputs.every((i) => i.port === DEAD_LETTER_PORT);
    sinks[stage.id] = { written: 0, deadLetters };
  }
  return {
    pipeline: spec.name,
    elapsedMs: 0,
    recordsIn: 0,
    recordsOut: 0,
    sinks,
    rejected: 0,
    errors: 0,
    inputErrors: 0,
    bytesRead: 0,
    warnings: [],
    reports: [],
    checkpoints: 0,
  };
}

/** Warnings kept for the summary; more distinct ones are counted with the last kept. */
const MAX_WARNINGS = 10;

/** `logger`, which also notes its warnings in `stats` so that the summary repeats them. */
export function notingWarnings(logger: Logger, stage: string | undefined, stats: RunStats): Logger {
  return {
    debug: (message, fields) => logger.debug(message, fields),
    info: (message, fields) => logger.info(message, fields),
    warn: (message, fields) => {
      const known = stats.warnings.find((w) => w.stage === stage && w.message === message);
      if (known) known.count++;
      else if (stats.warnings.length < MAX_WARNINGS) stats.warnings.push({ stage, message, count: 1 });
      logger.warn(message, fields);
    },
    error: (message, fields) => logger.error(message, fields),
  };
}
