/**
 * Whether a checkpoint still fits the pipeline it is resumed into. A checkpoint holds state by stage id (a
 * source's position, a sink's file size, a transform's windows); a pipeline edited since may have renamed a
 * stage, retyped it, removed or added one. Removed and added stages are plain: the removed one's state is
 * dropped, the added one starts fresh. A renamed stage looks like both at once, and resuming would silently
 * read a renamed source from the start again (every line duplicated): that, and a stage whose type changed,
 * is refused, with the options to go on — `--rename old=new`, `--forget id`, or `--reset` (start over).
 */
import type { PipelineSpec, StageKind } from '../config/types.ts';
import { EtlError } from '../errors.ts';
import type { CheckpointRecord } from './store.ts';

export interface FitOptions {
  /** Old stage id → new stage id: the state of `old` is the state of `new`. */
  readonly renames?: Readonly<Record<string, string>>;
  /** Stage ids whose state is dropped: they start fresh. */
  readonly forget?: readonly string[];
}

export interface Fitted {
  readonly record: CheckpointRecord;
  /** What was dropped or moved, to log. */
  readonly notes: readonly string[];
  /** Whether the record differs from the one given (so it must be saved before it is used). */
  readonly changed: boolean;
}

/** `source:file`: what a stage id held state for. */
export function stageTypes(spec: PipelineSpec): Record<string, string> {
  return Object.fromEntries(spec.stages.map((s) => [s.id, `${s.kind}:${s.type}`]));
}

export function fitCheckpoint(record: CheckpointRecord, spec: PipelineSpec, options: FitOptions = {}): Fitted {
  const notes: string[] = [];
  let changed = false;
  let fitted = record;
  for (const [from, to] of Object.entries(options.renames ?? {})) {
    if (!holds(fitted, from)) continue;
    if (holds(fitted, to)) {
      throw mismatch(spec, `--rename ${from}=${to}: checkpoint ${record.id} holds state for \`${to}\` too`);
    }
    fitted = renamed(fitted, from, to);
    notes.push(`state of \`${from}\` now belongs to \`${to}\` (--rename)`);
    changed = true;
  }
  for (const id of options.forget ?? []) {
    if (!holds(fitted, id)) continue;
    fitted = without(fitted, id);
    notes.push(`state of \`${id}\` dropped (--forget): it starts fresh`);
    changed = true;
  }

  const now = stageTypes(spec);
  const then = recordedStages(fitted);
  // Older checkpoints know the kind of a stage, not its type (`source:?`).
  const retyped = Object.keys(then).filter((id) => {
    const was = then[id] as string;
    const is = now[id];
    return is !== undefined && is !== was && (!was.endsWith(':?') || kindOf(was) !== kindOf(is));
  });
  if (retyped.length > 0) {
    const list = retyped.map((id) => `\`${id}\` was a ${describe(then[id])} and is a ${describe(now[id])}`);
    throw mismatch(
      spec,
      `checkpoint ${fitted.id} does not fit pipeline ${spec.name}: ${list.join('; ')}. ` +
        `Its state cannot carry over: \`--forget ${retyped.join(',')}\` starts ${retyped.length > 1 ? 'them' : 'it'} fresh`,
    );
  }
  for (const kind of ['source', 'transform', 'sink'] as const) {
    const removed = Object.keys(then).filter((id) => kindOf(then[id]) === kind && now[id] === undefined);
    // A stage added since may be a removed one renamed only if it has the removed one's type (when the checkpoint
    // says): stateless stages hold no state, so every one of them would otherwise look added.
    const renamedFrom = (id: string) => removed.find((old) => sameType(then[old], now[id]));
    const added = Object.keys(now).filter(
      (id) => kindOf(now[id]) === kind && then[id] === undefined && renamedFrom(id) !== undefined,
    );
    if (removed.length > 0 && added.length > 0) {
      const old = removed.map((id) => `\`${id}\``).join(', ');
      const fresh = added.map((id) => `\`${id}\``).join(', ');
      const first = added[0] as string;
      throw mismatch(
        spec,
        `checkpoint ${fitted.id} holds state for ${kind} ${old}, which pipeline ${spec.name} no longer has, and ${kind} ` +
          `${fresh} has none. If ${fresh} is ${old} renamed: --rename ${renamedFrom(first)}=${first}; if ${old} is gone ` +
          `for good: --forget ${removed.join(',')}` +
          (kind === 'source' ? ` (${fresh} then reads from the start)` : ''),
      );
    }
    for (const id of removed) {
      fitted = without(fitted, id);
      notes.push(`${kind} \`${id}\` is no longer in the pipeline: its checkpoint state is dropped`);
      changed = true;
    }
  }
  return { record: fitted, notes, changed };
}

/** Whether a stage recorded as `was` (`kind:type`, or `kind:?` in older checkpoints) can be one of type `is`. */
function sameType(was: string | undefined, is: string | undefined): boolean {
  if (was === undefined || is === undefined) return false;
  return was.endsWith(':?') ? kindOf(was) === kindOf(is) : was === is;
}

/** Stage ids the record holds state for, with their `kind:type` when the record says (older ones do not). */
function recordedStages(record: CheckpointRecord): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = { ...(record.stages ?? {}) };
  for (const id of Object.keys(record.positions)) out[id] ??= 'source:?';
  for (const id of Object.keys(record.sinks)) out[id] ??= 'sink:?';
  for (const id of Object.keys(record.transforms)) out[id] ??= 'transform:?';
  return out;
}

function holds(record: CheckpointRecord, id: string): boolean {
  return (
    id in record.positions ||
    id in record.sinks ||
    id in record.transforms ||
    (record.stages?.[id] ?? '') !== '' ||
    Object.keys(record.keyed ?? {}).some((key) => stageOfKeyed(key) === id)
  );
}

/** `<stage>.<name>` → `<stage>` (names hold no dot). */
function stageOfKeyed(key: string): string {
  return key.slice(0, key.lastIndexOf('.'));
}

function renamed(record: CheckpointRecord, from: string, to: string): CheckpointRecord {
  const move = <T>(map: Record<string, T>): Record<string, T> =>
    Object.fromEntries(Object.entries(map).map(([id, value]) => [id === from ? to : id, value]));
  return {
    ...record,
    positions: move(record.positions),
    sinks: move(record.sinks),
    transforms: move(record.transforms),
    ...(record.stages ? { stages: move(record.stages) } : {}),
    ...(record.keyed
      ? {
          keyed: Object.fromEntries(
            Object.entries(record.keyed).map(([key, value]) => [
              stageOfKeyed(key) === from ? `${to}${key.slice(from.length)}` : key,
              value,
            ]),
          ),
        }
      : {}),
  };
}

function without(record: CheckpointRecord, id: string): CheckpointRecord {
  const drop = <T>(map: Record<string, T>): Record<string, T> =>
    Object.fromEntries(Object.entries(map).filter(([key]) => key !== id));
  return {
    ...record,
    positions: drop(record.positions),
    sinks: drop(record.sinks),
    transforms: drop(record.transforms),
    ...(record.stages ? { stages: drop(record.stages) } : {}),
    ...(record.keyed
      ? { keyed: Object.fromEntries(Object.entries(record.keyed).filter(([key]) => stageOfKeyed(key) !== id)) }
      : {}),
  };
}

function kindOf(type: string | undefined): StageKind | undefined {
  return type?.split(':')[0] as StageKind | undefined;
}

function describe(type: string | undefined): string {
  const [kind, name] = (type ?? '?:?').split(':');
  return name === '?' ? `${kind}` : `\`${name}\` ${kind}`;
}

function mismatch(spec: PipelineSpec, message: string): EtlError {
  return new EtlError(
    'ETL_STATE_MISMATCH',
    `${message}; or start pipeline ${spec.name} over with --reset (sinks that append will hold the records twice)`,
  );
}
