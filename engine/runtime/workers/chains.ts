/**
 * Which stages run on worker threads, and together: a stage with `workers` > 1 joins the chain of the stage it reads
 * when it reads only that stage's `default` port, is its only reader, has the same `workers`, and dead-letters what
 * it cannot process (`on_error: dead_letter`, the default: a failure then stays inside the worker, and a stage whose
 * policy is `retry` or `fail` acts on the main thread as the first of its own chain). Records then cross threads
 * once for the whole chain rather than at every stage.
 */
import type { PipelineSpec, StageSpec } from '../../config/types.ts';
import { DEFAULT_PORT } from '../../graph/graph.ts';
import type { TransformDefinition } from '../../operator.ts';

export interface ChainPlan {
  /** Stage ids in order; the first one's batches go to the workers. */
  readonly stages: readonly string[];
  readonly workers: number;
}

/** The chains by the id of each of their stages. */
export function planChains(
  spec: PipelineSpec,
  consumers: ReadonlyMap<string, readonly string[]>,
): Map<string, ChainPlan> {
  const byStage = new Map<string, ChainPlan & { stages: string[] }>();
  const stages = new Map(spec.stages.map((s) => [s.id, s]));
  for (const stage of spec.stages) {
    if (stage.kind !== 'transform' || stage.workers <= 1) continue;
    assertStateless(stage);
    const input = stage.inputs.length === 1 ? stage.inputs[0] : undefined;
    const previous = input && input.port === DEFAULT_PORT ? byStage.get(input.stage) : undefined;
    const upstream = input ? stages.get(input.stage) : undefined;
    const joins =
      previous !== undefined &&
      upstream !== undefined &&
      previous.stages[previous.stages.length - 1] === upstream.id &&
      upstream.workers === stage.workers &&
      stage.onError === 'dead_letter' &&
      consumers.get(`${upstream.id}.${DEFAULT_PORT}`)?.length === 1;
    if (joins && previous) {
      previous.stages.push(stage.id);
      byStage.set(stage.id, previous);
    } else {
      byStage.set(stage.id, { stages: [stage.id], workers: stage.workers });
    }
  }
  return byStage;
}

/** `etl validate` refuses `workers` on a stateful transform; a spec built otherwise (tests, embedding) is checked here. */
function assertStateless(stage: StageSpec): void {
  const def = stage.definition as TransformDefinition;
  const stateless = def.statelessFor?.(stage.options) ?? def.stateless === true;
  if (!stateless) {
    throw new Error(
      `stage ${stage.id}: the \`${stage.type}\` transform is not stateless and cannot run on worker threads`,
    );
  }
}
