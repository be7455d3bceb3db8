/**
 * Which edges hand their records over as copies: those into a stage that changes records in place
 * (`TransformDefinition.changesRecords`) whose objects someone else may also hold. Decided once per edge when the
 * run is wired, so the per-record path only copies where it must.
 *
 * Objects leaving a stage are its readers' own when the stage's port has one reader, the stage does not share what
 * it emits (`sharesRecords`) and what it passes on was its own: records it received on edges that were exclusive or
 * copied. A transform is assumed to pass on what it receives (most do; one that builds new records only costs a
 * copy it could have spared). Sinks emit only dead letters they build. Stages on worker threads emit objects decoded
 * from the worker, new ones, and change nothing of the main thread's objects: they are never given copies (a chain
 * link's batch carries the worker's answer on the array itself).
 */
import type { StageSpec } from '../config/types.ts';
import type { Graph } from '../graph/graph.ts';
import type { TransformDefinition } from '../operator.ts';

/** The key of an edge in the set `copyingEdges` returns. */
export function edgeKey(from: string, port: string, to: string): string {
  return `${from}.${port}->${to}`;
}

/** Whether the stage changes the records `process` receives in place, with its options. */
export function changesRecords(stage: StageSpec): boolean {
  if (stage.definition.kind !== 'transform') return false;
  const def = stage.definition as TransformDefinition;
  return def.changesRecordsFor?.(stage.options) ?? def.changesRecords === true;
}

function sharesRecords(stage: StageSpec): boolean {
  const def = stage.definition;
  return def.kind !== 'sink' && def.sharesRecords === true;
}

/**
 * The edges (`edgeKey`) on which a changing stage must be given copies. `consumers`: the readers of each
 * `stage.port` (graph.ts `consumersByPort`); `onWorkers`: whether a stage runs on worker threads.
 */
export function copyingEdges(
  graph: Graph,
  consumers: ReadonlyMap<string, readonly string[]>,
  onWorkers: (id: string) => boolean,
): Set<string> {
  const copies = new Set<string>();
  /** Whether the objects a stage emits are held by nobody but the readers of each port. */
  const exclusiveOut = new Map<string, boolean>();
  for (const id of graph.order ?? []) {
    const stage = graph.stages.get(id) as StageSpec;
    const changing = changesRecords(stage) && !onWorkers(id);
    let ownsInput = true;
    for (const input of stage.inputs) {
      const exclusive =
        exclusiveOut.get(input.stage) === true && (consumers.get(`${input.stage}.${input.port}`)?.length ?? 0) === 1;
      if (exclusive) continue;
      if (changing) copies.add(edgeKey(input.stage, input.port, id));
      else ownsInput = false;
    }
    const out =
      stage.kind === 'sink' ||
      (stage.kind === 'transform' && onWorkers(id)) ||
      (!sharesRecords(stage) && (stage.kind === 'source' || ownsInput));
    exclusiveOut.set(id, out);
  }
  return copies;
}

/** Shallow copies of `records`; spread copies the `ORIGIN` symbol key too. */
export function copyRecords<T extends object>(records: readonly T[]): T[] {
  const out = new Array<T>(records.length);
  for (let i = 0; i < records.length; i++) out[i] = { ...(records[i] as T) };
  return out;
}
