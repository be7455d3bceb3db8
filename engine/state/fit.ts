/**
 * Whether a checkpoint still fits the pipeline it is resumed into. A checkpoint holds state by stage id (a
 * source's position, a sink's file size, a transform's windows); a pipeline edited since may have renamed a
 * stage, retyped it, removed or added one. Removed and added stages are plain: the removed one's state is
 * dropped, the added one starts fresh. A renamed stage looks like both at once, and resuming would silently
 * read a renamed source from the start again (every line duplicated): that, and a stage whose type changed,
 * is refused, with the options to go on — `--rename old=new`, `--forget id`, or `--reset` (start over).
 */
import { createHash } from 'node:crypto';
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

/**
 * A digest of each stage as declared (kind, type, inputs and options, defaults applied), by id. Checkpoints keep
 * them so that a rerun of a pipeline edited since can say what changed (`changesSince`): a stage added in front of
 * the sinks, or an option changed, applies only to what is read from then on, and nothing warns of that otherwise.
 */
export function stageFingerprints(
  spec: PipelineSpec,
  renames: Readonly<Record<string, string>> = {},
): Record<string, string> {
  // Inputs named as before `--rename old=new`: a stage reading a renamed one is not edited.
  const before = new Map(Object.entries(renames).map(([old, now]) => [now, old]));
  return Object.fromEntries(
    spec.stages.map((s) => {
      const inputs = s.inputs.map((input) => [before.get(input.stage) ?? input.stage, input.port]);
      const declared = canonicalJson({ kind: s.kind, type: s.type, inputs, options: s.options });
      return [s.id, createHash('sha256').update(declared).digest('hex').slice(0, 16)];
    }),
  );
}

/**
 * What was edited in the pipeline since `record` was taken (stages added, removed, or declared otherwise), one
 * phrase each; none when nothing was, or when the record predates fingerprints. `record` is fitted already (its
 * stages renamed by `renames`).
 */
export function changesSince(
  record: CheckpointRecord,
  spec: PipelineSpec,
  renames: Readonly<Record<string, string>> = {},
): string[] {
  const then = record.fingerprints;
  if (then === undefined) return [];
  const now = stageFingerprints(spec, renames);
  const named = (id: string) => {
    const stage = spec.stages.find((s) => s.id === id);
    return stage ? `${stage.kind} \`${id}\` (${stage.type})` : `\`${id}\``;
  };
  const changes: string[] = [];
  for (const [id, print] of Object.entries(now)) {
    if (then[id] === undefined) changes.push(`${named(id)} added`);
    else if (then[id] !== print) changes.push(`${named(id)} declared otherwise (inputs or options)`);
  }
  for (const id of Object.keys(then)) if (now[id] === undefined) changes.push(`\`${id}\` removed`);
  return changes;
}

/** JSON with every object's keys sorted: the same options written in another order give the same text. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
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
    ...(record.fingerprints ? { fingerprints: move(record.fingerprints) } : {}),
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
    ...(record.fingerprints ? { fingerprints: drop(record.fingerprints) } : {}),
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
