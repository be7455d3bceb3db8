/** `etl schema`: the composed pipeline JSON Schema, for editors (`# yaml-language-server: $schema=…`). */
import type { OperatorDefinition } from '../../operator.ts';
import { composePipelineSchema } from '../../schema/compose.ts';

export interface SchemaOptions {
  out: NodeJS.WritableStream;
  /** For tests; default operators/registry.ts. */
  registry?: readonly OperatorDefinition[];
}

export async function runSchema(options: SchemaOptions): Promise<number> {
  const registry = options.registry ?? (await import('../../../operators/all.ts')).registry;
  const schema = composePipelineSchema(registry);
  options.out.write(`${JSON.stringify(schema, null, 2)}\n`);
  return 0;
}
