/**
 * Sinks that write the same thing (a file) in one run interleave their bytes, and each one's exactly-once
 * bookkeeping undoes the other's. Across every document loaded together, the second sink that claims what
 * an earlier one writes is refused.
 */
import { fileURLToPath } from 'node:url';
import type { PipelineDocument } from './document.ts';
import { optionsOf, type StageEntry } from './stages.ts';

export interface DocumentStages {
  readonly document: PipelineDocument;
  readonly entries: readonly StageEntry[];
}

export function checkExclusiveWrites(documents: readonly DocumentStages[], cwd: string): void {
  const claimed = new Map<string, { document: PipelineDocument; entry: StageEntry }>();
  for (const { document, entries } of documents) {
    for (const entry of entries) {
      const def = entry.definition;
      if (def?.kind !== 'sink' || !def.writes || !entry.value || !entry.schemaValid) continue;
      for (const target of def.writes(optionsOf(entry.value), cwd)) {
        const earlier = claimed.get(target);
        if (!earlier) {
          claimed.set(target, { document, entry });
          continue;
        }
        const at = earlier.document.positionOf(earlier.entry.path, 'key');
        const where = earlier.document === document ? `line ${at.line}` : `${earlier.document.file}:${at.line}`;
        document.report({
          path: entry.path,
          code: 'ETL_GRAPH_SHARED_TARGET',
          message: `sink \`${entry.id}\` writes ${displayTarget(target)}, as sink \`${earlier.entry.id}\` (${where}) does`,
          hint: 'two sinks writing one file interleave their bytes; give each its own path, or feed both inputs to one sink',
          target: 'key',
        });
      }
    }
  }
}

function displayTarget(target: string): string {
  return target.startsWith('file:') ? fileURLToPath(target) : target;
}
