/**
 * `spec.resources`: shared clients declared once by name (their options were checked by the schema pass),
 * and the stage options that name them: each must name a declared resource of the type it takes.
 */
import type { ResourceDefinition } from '../operator.ts';
import type { PipelineDocument } from './document.ts';
import { asRecord, optionsOf, type StageEntry } from './stages.ts';
import { didYouMeanSuffix, list } from './suggest.ts';
import type { ResourceSpec } from './types.ts';

/** The resources a document declares; unknown types are reported (the schema pass stays quiet about them). */
export function collectResources(
  pipeline: PipelineDocument,
  data: unknown,
  known: readonly ResourceDefinition[],
): ResourceSpec[] {
  const declared = asRecord(asRecord(asRecord(data)?.spec)?.resources);
  const out: ResourceSpec[] = [];
  for (const [name, raw] of Object.entries(declared ?? {})) {
    const value = asRecord(raw);
    const type = value?.type;
    if (typeof type !== 'string') continue; // the schema pass says what is wrong
    const definition = known.find((d) => d.type === type);
    if (!definition) {
      const types = known.map((d) => d.type);
      pipeline.report({
        path: ['spec', 'resources', name, 'type'],
        code: 'ETL_CFG_UNKNOWN_TYPE',
        message: `unknown resource type \`${type}\`; known: ${list(types)}${didYouMeanSuffix(type, types)}`,
      });
      continue;
    }
    const { type: _type, ...options } = value as Record<string, unknown>;
    const position = pipeline.positionOf(['spec', 'resources', name], 'key');
    out.push({ name, type, definition, options, position: { file: pipeline.file, ...position } });
  }
  return out;
}

/** Every resource a stage's options name is declared, and of the type the stage takes. */
export function checkResourceUses(
  pipeline: PipelineDocument,
  entries: readonly StageEntry[],
  resources: readonly ResourceSpec[],
  data: unknown,
): void {
  const byName = new Map(resources.map((r) => [r.name, r]));
  // Declared, but refused already (an unknown type): no second complaint at each use.
  const declared = new Set(Object.keys(asRecord(asRecord(asRecord(data)?.spec)?.resources) ?? {}));
  for (const entry of entries) {
    const def = entry.definition;
    if (!def?.uses || !entry.value || !entry.schemaValid) continue;
    for (const use of def.uses(optionsOf(entry.value))) {
      const path = [...entry.path, ...use.path];
      const resource = byName.get(use.name);
      if (!resource && declared.has(use.name)) continue;
      if (!resource) {
        const names = [...byName.keys()];
        pipeline.report({
          path,
          code: 'ETL_GRAPH_UNKNOWN_RESOURCE',
          message: `\`${use.name}\` names no shared resource${didYouMeanSuffix(use.name, names)}`,
          hint:
            names.length > 0
              ? `resources: ${list(names)}; or declare it under spec.resources: \`${use.name}: { type: ${use.type}, … }\``
              : `declare it under spec.resources: \`${use.name}: { type: ${use.type}, … }\``,
        });
      } else if (resource.type !== use.type) {
        pipeline.report({
          path,
          code: 'ETL_GRAPH_UNKNOWN_RESOURCE',
          message: `\`${use.name}\` is a \`${resource.type}\` resource; this option takes a \`${use.type}\` one`,
        });
      }
    }
  }
}
