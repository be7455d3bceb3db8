/** `etl schema`: the composed pipeline JSON Schema, for editors (`# yaml-language-server: $schema=…`). */
import type { OperatorDefinition } from '../../operator.ts';
import { registry as defaultRegistry } from '../../../operators/registry.ts';
import { composePipelineSchema } from '../../schema/compose.ts';

export interface SchemaOptions {
  out: NodeJS.WritableStream;
  /** For tests; default operators/registry.ts. */
  registry?: readonly OperatorDefinition[];
}

export function runSchema(options: SchemaOptions): number {
  const schema = composePipelineSchema(options.registry ?? defaultRegistry);
  options.out.write(`${JSON.stringify(schema, null, 2)}\n`);
  return 0;
}
