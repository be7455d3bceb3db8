/** The operator context the benchmarks run stages in by hand: silent, no metrics, no checkpoints, no state. */
import { tmpdir } from 'node:os';
import type { OperatorContext } from '../engine/operator.ts';
import { detachedState, noopMetrics, silentLogger } from '../engine/runtime/noop.ts';

export function benchContext(
  id: string,
  options: { dataDir?: string; ports?: readonly string[]; watermark?: OperatorContext['watermark'] } = {},
): OperatorContext {
  const dataDir = options.dataDir ?? tmpdir();
  return {
    pipeline: 'bench',
    id,
    logger: silentLogger,
    signal: new AbortController().signal,
    dataDir,
    baseDir: dataDir,
    metrics: noopMetrics,
    requestCheckpoint() {},
    readPorts: new Set(options.ports ?? ['default', 'dead_letter', 'error_log']),
    ...detachedState,
    ...(options.watermark ? { watermark: options.watermark } : {}),
  };
}
