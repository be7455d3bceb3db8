/**
 * What makes two versions of a pipeline the same: its stages, their options and wiring, its settings and
 * resources, after `${VAR}` interpolation. Where it is declared (file, line) and comments are not part of it,
 * so a file saved again, reformatted or commented does not restart anything.
 */
import { createHash } from 'node:crypto';
import type { PipelineSpec } from '../config/types.ts';

/** One change between two versions, for `dryRun` and `etl diff`. */
export interface Change {
  readonly path: string;
  readonly change: 'added' | 'removed' | 'changed';
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The comparable content of a pipeline: plain JSON, no positions, no operator definitions. */
function essence(spec: PipelineSpec): Record<string, Json> {
  return {
    description: spec.description ?? null,
    settings: toJson(spec.settings),
    telemetry: toJson(spec.telemetry),
    stages: Object.fromEntries(
      spec.stages.map((s) => [
        s.id,
        toJson({
          kind: s.kind,
          type: s.type,
          inputs: s.inputs.map((i) => i.text),
          options: s.options,
          on_error: s.onError,
          retry: s.retry,
          max_in_flight: s.maxInFlight,
        }),
      ]),
    ),
    resources: Object.fromEntries(spec.resources.map((r) => [r.name, toJson({ type: r.type, options: r.options })])),
  };
}

function toJson(value: unknown): Json {
  if (value === null || value === undefined) return null;
  if (Array.isArray(value)) return value.map(toJson);
  if (typeof value === 'object') {
    const out: Record<string, Json> = {};
    for (const key of Object.keys(value).sort()) {
      const item = (value as Record<string, unknown>)[key];
      if (item !== undefined && typeof item !== 'function') out[key] = toJson(item);
    }
    return out;
  }
  if (typeof value === 'bigint') return value.toString();
  return value as Json;
}

/** A short hash of the pipeline's content: equal for versions that run the same. */
export function fingerprint(spec: PipelineSpec): string {
  return createHash('sha256')
    .update(JSON.stringify(toJson(essence(spec))))
    .digest('hex')
    .slice(0, 16);
}

/**
 * Stage by stage and setting by setting, what `next` changes in `previous` (`stages.parsed`,
 * `settings.checkpointIntervalMs`). Values are not shown: they may hold interpolated secrets.
 */
export function diffVersions(previous: PipelineSpec | undefined, next: PipelineSpec): Change[] {
  const after = essence(next);
  if (!previous) return [{ path: '', change: 'added' }];
  const before = essence(previous);
  const changes: Change[] = [];
  for (const section of Object.keys(after)) {
    const a = before[section] ?? null;
    const b = after[section] ?? null;
    const nested = section === 'stages' || section === 'resources' || section === 'settings' || section === 'telemetry';
    if (!nested || !isObject(a) || !isObject(b)) {
      if (JSON.stringify(a) !== JSON.stringify(b)) changes.push({ path: section, change: 'changed' });
      continue;
    }
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const path = `${section}.${key}`;
      if (!(key in a)) changes.push({ path, change: 'added' });
      else if (!(key in b)) changes.push({ path, change: 'removed' });
      else if (JSON.stringify(a[key]) !== JSON.stringify(b[key])) changes.push({ path, change: 'changed' });
    }
  }
  return changes;
}

function isObject(value: Json): value is { [key: string]: Json } {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
