/** An OperatorContext for driving one operator through its contract in a unit test. */
import type { OperatorContext } from '../../../engine/operator.ts';
import { noopMetrics, silentLogger } from '../../../engine/runtime/noop.ts';

export function testContext(overrides: Partial<OperatorContext> = {}): OperatorContext {
  return {
    pipeline: 'test',
    id: 'stage',
    logger: silentLogger,
    signal: new AbortController().signal,
    dataDir: '.etl',
    baseDir: process.cwd(),
    metrics: noopMetrics,
    requestCheckpoint: () => {},
    ...overrides,
  };
}
