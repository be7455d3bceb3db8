/**
 * Every operator's definition, loaded: for what needs them all at once (the published schemas, `etl schema`,
 * tests, benchmarks). The CLI's start goes through operators/registry.ts and loads only the ones it uses.
 */
import type { OperatorDefinition } from '../engine/operator.ts';
import { loadRegistry } from './registry.ts';

export { resources } from './registry.ts';

export const registry: readonly OperatorDefinition[] = await loadRegistry();

export function findOperator(kind: OperatorDefinition['kind'], type: string): OperatorDefinition | undefined {
  return registry.find((def) => def.kind === kind && def.type === type);
}
