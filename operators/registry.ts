/**
 * Every operator the engine knows. Adding one: a folder under operators/<kind>/<type>/ and one line here.
 */
import type { OperatorDefinition } from '../engine/operator.ts';

export const registry: readonly OperatorDefinition[] = [];

export function findOperator(kind: OperatorDefinition['kind'], type: string): OperatorDefinition | undefined {
  return registry.find((def) => def.kind === kind && def.type === type);
}
