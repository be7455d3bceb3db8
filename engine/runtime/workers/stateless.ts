/** What a stateless transform (`TransformDefinition.stateless`) may not have or use, checked where it is created. */
import { EtlError } from '../../errors.ts';
import type { OperatorContext, Transform } from '../../operator.ts';

/** Each of these holds state between batches or hands it on: a transform with one is not stateless. */
export const STATEFUL_METHODS = [
  'tick',
  'flush',
  'snapshot',
  'restore',
  'prepareCommit',
  'commit',
  'summarize',
] as const;

function refuse(id: string, what: string): never {
  throw new EtlError(
    'ETL_RUN_STAGE_FAILED',
    `stage ${id} runs on worker threads, where a stateless operator has no ${what}; declare it stateful or remove \`workers\``,
  );
}

/** The parts of a context a stateless transform has no use for: each throws, naming the stage. */
export function statelessContext(
  id: string,
): Pick<OperatorContext, 'requestCheckpoint' | 'snapshotId' | 'keyed' | 'watermark' | 'resource'> {
  return {
    requestCheckpoint: () => refuse(id, 'checkpoint to request'),
    snapshotId: () => refuse(id, 'snapshot'),
    keyed: () => refuse(id, 'keyed state'),
    watermark: () => refuse(id, 'watermark'),
    resource: () => refuse(id, 'shared resource'),
  };
}

/** Throws when `transform`, declared stateless, has a method that keeps or hands on state. */
export function assertNoStatefulMethods(id: string, transform: Transform): void {
  const stateful = STATEFUL_METHODS.find((method) => typeof transform[method] === 'function');
  if (stateful) refuse(id, `\`${stateful}\``);
}
