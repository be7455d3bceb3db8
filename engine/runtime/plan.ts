/** `etl apply --dry-run`: what each sink would change, without changing anything. */
import type { PipelineSpec } from '../config/types.ts';
import type { Logger, SinkDefinition } from '../operator.ts';
import type { Telemetry } from '../telemetry/types.ts';
import { operatorContext } from './context.ts';
import { detachedState, noopTelemetry, silentLogger } from './noop.ts';

export interface StagePlan {
  readonly stage: string;
  readonly type: string;
  readonly actions: readonly string[];
}

export async function planPipeline(
  spec: PipelineSpec,
  options: { logger?: Logger; telemetry?: Telemetry; cwd?: string } = {},
): Promise<StagePlan[]> {
  const plans: StagePlan[] = [];
  const abort = new AbortController();
  for (const stage of spec.stages) {
    if (stage.definition.kind !== 'sink') continue;
    const sink = await (stage.definition as SinkDefinition).create(
      stage.options,
      operatorContext(spec, stage, {
        telemetry: options.telemetry ?? noopTelemetry,
        logger: options.logger ?? silentLogger,
        signal: abort.signal,
        baseDir: options.cwd ?? process.cwd(),
        requestCheckpoint: () => {},
        ...detachedState,
      }),
    );
    try {
      plans.push({ stage: stage.id, type: stage.type, actions: (await sink.plan?.()) ?? [] });
    } finally {
      await sink.close?.();
    }
  }
  return plans;
}
