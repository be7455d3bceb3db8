/**
 * The graph pass: every input names a stage and one of its ports, kinds fit, no cycle, no duplicate id,
 * at least one source and one sink, and (as warnings) no output that nobody reads, no port upstream of a stage
 * that removes personal data reaching a sink around it.
 */
import { isMap } from 'yaml';
import type { OperatorDefinition } from '../operator.ts';
import { acceptedKinds, buildGraph, DEAD_LETTER_PORT, DEFAULT_PORT, type Graph, outputPorts } from '../graph/graph.ts';
import type { RecordKind } from '../record.ts';
import { STAGE_ID_PATTERN } from '../schema/envelope.ts';
import type { PipelineDocument } from './document.ts';
import { type InputEntry, inputsOf, type StageEntry, toStageSpec } from './stages.ts';
import { didYouMean, list } from './suggest.ts';
import type { StageSpec } from './types.ts';

export const STAGE_ID_RE = new RegExp(STAGE_ID_PATTERN);

export function checkGraph(pipeline: PipelineDocument, entries: readonly StageEntry[]): void {
  const first = new Map<string, StageEntry>();
  for (const entry of entries) {
    const earlier = first.get(entry.id);
    if (!earlier) {
      first.set(entry.id, entry);
      continue;
    }
    const at = pipeline.positionOf(earlier.path, 'key');
    pipeline.report({
      path: entry.path,
      code: 'ETL_GRAPH_DUPLICATE_ID',
      message: `duplicate stage id \`${entry.id}\`: the ${earlier.section.kind} at line ${at.line} already uses it`,
      hint: 'stage ids are unique across sources, operators and sinks',
      target: 'key',
    });
  }
  checkEnds(pipeline, entries);

  const specs = new Map<string, StageSpec>();
  for (const [id, entry] of first) {
    // An id that is not a valid id (reported by the schema pass) cannot be read from anyway.
    if (entry.definition && entry.value && STAGE_ID_RE.test(id)) {
      specs.set(id, provisionalSpec(pipeline, entry, entry.definition));
    }
  }
  const ports = new Map<string, Record<string, RecordKind>>();
  for (const [id, spec] of specs) ports.set(id, portsOf(pipeline, first.get(id) as StageEntry, spec));

  // `stage.port` keys read by some input; a misspelt input counts as reading what it was meant to read.
  const read = new Set<string>();
  for (const entry of entries) {
    if (entry.section.kind === 'source' || !entry.value) continue;
    const inputs = inputsOf(entry);
    if (entry.value.inputs === undefined || (inputs !== undefined && (entry.value.inputs as unknown[]).length === 0)) {
      pipeline.report({
        path: entry.value.inputs === undefined ? entry.path : [...entry.path, 'inputs'],
        code: 'ETL_GRAPH_NO_INPUT',
        message: `${entry.section.kind} \`${entry.id}\` has no input`,
        hint: 'list the stages it reads from: `inputs: [<stage>]`',
        target: 'key',
      });
    }
    const spec = specs.get(entry.id);
    const accepts = spec && first.get(entry.id) === entry ? acceptedKinds(spec) : undefined;
    for (const input of inputs ?? []) {
      read.add(`${input.ref.stage}.${input.ref.port}`);
      const meant = checkInput(pipeline, entry, input, first, ports, accepts);
      if (meant !== undefined) read.add(`${meant}.${input.ref.port}`);
    }
  }

  const graph = buildGraph([...specs.values()]);
  if (graph.cycle) reportCycle(pipeline, graph.cycle, first);

  if (!graph.cycle) checkPersonalDataBypass(pipeline, graph, first);
  checkRowKeys(pipeline, graph, first);

  for (const [id, spec] of specs) {
    const stagePorts = ports.get(id) ?? {};
    if (spec.kind === 'sink' || !(DEFAULT_PORT in stagePorts) || read.has(`${id}.${DEFAULT_PORT}`)) continue;
    pipeline.report({
      path: (first.get(id) as StageEntry).path,
      code: 'ETL_GRAPH_UNREAD_OUTPUT',
      severity: 'warning',
      message: `nothing reads the output of ${spec.kind} \`${id}\``,
      hint: `add \`${id}\` to the \`inputs\` of an operator or sink, or remove the stage`,
      target: 'key',
    });
  }
}

function checkEnds(pipeline: PipelineDocument, entries: readonly StageEntry[]): void {
  if (!isMap(pipeline.nodeAt(['spec']))) return; // the schema pass reports a missing or malformed `spec`
  if (!entries.some((e) => e.section.kind === 'source')) {
    pipeline.report({
      path: ['spec'],
      code: 'ETL_GRAPH_NO_SOURCE',
      message: 'the pipeline has no source',
      hint: 'declare one under `spec.sources`',
      target: 'key',
    });
  }
  if (!entries.some((e) => e.section.kind === 'sink')) {
    pipeline.report({
      path: ['spec'],
      code: 'ETL_GRAPH_NO_SINK',
      message: 'the pipeline has no sink',
      hint: 'declare one under `spec.sinks`',
      target: 'key',
    });
  }
}

function checkInput(
  pipeline: PipelineDocument,
  entry: StageEntry,
  input: InputEntry,
  stages: ReadonlyMap<string, StageEntry>,
  ports: ReadonlyMap<string, Record<string, RecordKind>>,
  accepts: readonly RecordKind[] | undefined,
): string | undefined {
  const { ref, path } = input;
  const upstream = stages.get(ref.stage);
  if (!upstream) {
    const ids = [...stages.keys()].filter((id) => id !== entry.id);
    const meant = didYouMean(ref.stage, ids);
    pipeline.report({
      path,
      code: 'ETL_GRAPH_UNKNOWN_INPUT',
      message: `input \`${ref.text}\` names no stage${meant === undefined ? '' : ` — did you mean \`${meant}\`?`}`,
      hint: ids.length > 0 ? `stages: ${list(ids)}` : 'declare the stage it should read from',
    });
    return meant;
  }
  const upstreamPorts = ports.get(ref.stage);
  if (!upstreamPorts) return undefined; // unknown type, already reported
  const kind = upstreamPorts[ref.port];
  if (kind === undefined) {
    const names = Object.keys(upstreamPorts).map((p) => (p === DEFAULT_PORT ? ref.stage : `${ref.stage}.${p}`));
    const bare = ref.text === ref.stage;
    const suggestion = bare ? undefined : didYouMean(ref.port, Object.keys(upstreamPorts));
    pipeline.report({
      path,
      code: 'ETL_GRAPH_UNKNOWN_INPUT',
      message: bare
        ? `${upstream.section.kind} \`${ref.stage}\` has no default output`
        : `${upstream.section.kind} \`${ref.stage}\` has no port \`${ref.port}\`${suggestion ? ` — did you mean \`${ref.stage}.${suggestion}\`?` : ''}`,
      hint: names.length > 0 ? `its outputs: ${list(names)}` : `\`${ref.stage}\` has no outputs`,
    });
    return undefined;
  }
  if (accepts === undefined) return undefined;
  if (kind === 'any' || accepts.includes('any') || accepts.includes(kind)) return undefined;
  pipeline.report({
    path,
    code: 'ETL_GRAPH_KIND_MISMATCH',
    message: `stage \`${entry.id}\` takes ${kindsText(accepts)} but \`${ref.text}\` sends ${KIND_NAMES[kind]}`,
    hint:
      kind === 'raw' && (accepts.includes('access') || accepts.includes('error_log'))
        ? 'add a `parse` stage between them'
        : ((entry.definition?.kind === 'sink' ? entry.definition.acceptsHint?.(kind) : undefined) ??
          `read from a stage that sends ${kindsText(accepts)}`),
  });
  return undefined;
}

const KIND_NAMES: Record<RecordKind, string> = {
  raw: 'raw lines',
  access: 'access records',
  error_log: 'error-log records',
  dead_letter: 'dead letters',
  any: 'any records',
};

function kindsText(kinds: readonly RecordKind[]): string {
  const nouns = kinds.map((k) => KIND_NAMES[k]);
  return nouns.length <= 1 ? (nouns[0] ?? 'no records') : `${nouns.slice(0, -1).join(', ')} or ${nouns.at(-1)}`;
}

function reportCycle(
  pipeline: PipelineDocument,
  cycle: readonly string[],
  stages: ReadonlyMap<string, StageEntry>,
): void {
  // cycle = [a, b, …, a]: each stage reads the one before it; point at the input that closes the loop.
  const closing = stages.get(cycle[cycle.length - 1] as string) as StageEntry;
  const from = cycle[cycle.length - 2] as string;
  const input = (inputsOf(closing) ?? []).find((i) => i.ref.stage === from);
  pipeline.report({
    path: input?.path ?? closing.path,
    code: 'ETL_GRAPH_CYCLE',
    message: `the stages form a cycle: ${cycle.join(' -> ')}`,
    hint: 'a stage cannot read its own output, directly or through other stages',
  });
}

/**
 * A StageSpec good enough for the graph; `outputsFor` and `acceptsFor` are only trusted with options that
 * passed the schema.
 */
export function provisionalSpec(
  pipeline: PipelineDocument,
  entry: StageEntry,
  definition: OperatorDefinition,
): StageSpec {
  const trusted = entry.schemaValid
    ? definition
    : ({ ...definition, outputsFor: undefined, acceptsFor: undefined } as OperatorDefinition);
  return toStageSpec(pipeline, entry, trusted);
}

function portsOf(pipeline: PipelineDocument, entry: StageEntry, spec: StageSpec): Record<string, RecordKind> {
  try {
    return outputPorts(spec);
  } catch (error) {
    pipeline.report({
      path: entry.path,
      code: 'ETL_CFG_INVALID',
      message: `the \`${spec.type}\` ${spec.kind} could not derive its outputs from its options: ${String(error)}`,
      target: 'key',
    });
    return outputPorts({ ...spec, definition: { ...spec.definition, outputsFor: undefined } as OperatorDefinition });
  }
}

/**
 * A stage that removes personal data (`protectsPersonalData`, e.g. `anonymize`) protects only what passes
 * through it: every port of a stage upstream of it (its default port fanned out to a second reader, a named port
 * such as threat_intel's `threats`, its dead letters, which carry the original line) holds the records as they
 * were before it. Each path from such a port to a sink must pass through a protecting stage; one that does not is
 * warned at the input where it leaves the stages leading to a protecting stage.
 */
function checkPersonalDataBypass(
  pipeline: PipelineDocument,
  graph: Graph,
  first: ReadonlyMap<string, StageEntry>,
): void {
  const protects = (id: string) => {
    const def = graph.stages.get(id)?.definition;
    return def?.kind === 'transform' && def.protectsPersonalData === true;
  };
  const guards = [...graph.stages.keys()].filter(protects);
  if (guards.length === 0) return;
  const downstream = new Map<string, string[]>();
  const upstreamOf = new Map<string, string[]>();
  for (const e of graph.edges) {
    downstream.set(e.from, [...(downstream.get(e.from) ?? []), e.to]);
    upstreamOf.set(e.to, [...(upstreamOf.get(e.to) ?? []), e.from]);
  }
  // Stages some protecting stage reads from, directly or not.
  const upstream = new Set<string>();
  const stack = guards.flatMap((g) => upstreamOf.get(g) ?? []);
  while (stack.length > 0) {
    const id = stack.pop() as string;
    if (upstream.has(id)) continue;
    upstream.add(id);
    stack.push(...(upstreamOf.get(id) ?? []));
  }
  // Sinks that records entering `id` reach without passing a protecting stage (the graph has no cycle).
  const reached = new Map<string, readonly string[]>();
  const sinksFrom = (id: string): readonly string[] => {
    if (protects(id)) return [];
    const known = reached.get(id);
    if (known !== undefined) return known;
    const own = graph.stages.get(id)?.kind === 'sink' ? [id] : [];
    const result = [...new Set([...own, ...(downstream.get(id) ?? []).flatMap(sinksFrom)])];
    reached.set(id, result);
    return result;
  };
  const guardText = list(guards.map((g) => `\`${g}\``));
  const guardTypes = list([...new Set(guards.map((g) => `\`${graph.stages.get(g)?.type}\``))]);
  for (const edge of graph.edges) {
    // A path that leaks leaves the stages upstream of a protecting stage at exactly one edge: warn there, once.
    // The reader itself is not upstream of one, so no path from it passes a protecting stage.
    if (!upstream.has(edge.from) || protects(edge.from) || upstream.has(edge.to)) continue;
    const sinks = sinksFrom(edge.to);
    if (sinks.length === 0) continue;
    const entry = first.get(edge.to);
    const input = entry && (inputsOf(entry) ?? []).find((i) => i.ref.stage === edge.from && i.ref.port === edge.port);
    if (!input) continue;
    const port = input.ref.text;
    const holds =
      edge.port === DEAD_LETTER_PORT
        ? 'whose dead letters hold the original lines'
        : 'whose records still hold the personal data';
    const via =
      sinks.length === 1 && sinks[0] === edge.to ? '' : `, reaching ${list(sinks.map((k) => `sink \`${k}\``))}`;
    pipeline.report({
      path: input.path,
      code: 'ETL_GRAPH_PERSONAL_DATA',
      severity: 'warning',
      message: `\`${edge.to}\` reads \`${port}\`, ${holds}${via}, around ${guardText}`,
      hint:
        edge.port === DEAD_LETTER_PORT
          ? `read \`${port}\` in ${guardText} instead: it scrubs the dead letters it reads and sends them on its own \`dead_letter\` port`
          : `read \`${port}\` through ${guardText} (or a stage of its own of type ${guardTypes}) before it reaches a sink`,
    });
  }
}

/**
 * A stage that emits rows again, corrected (`rowKey`: an aggregate's late updates), read by a sink that keys what
 * it stores (`storeKey`): warned when the sink would add a row per emission, keys rows otherwise, or keeps the
 * first of them.
 */
function checkRowKeys(pipeline: PipelineDocument, graph: Graph, first: ReadonlyMap<string, StageEntry>): void {
  for (const edge of graph.edges) {
    if (edge.port !== DEFAULT_PORT) continue;
    const from = graph.stages.get(edge.from);
    const to = graph.stages.get(edge.to);
    if (from?.definition.kind !== 'transform' || to?.definition.kind !== 'sink') continue;
    const rowKey = from.definition.rowKey?.(from.options);
    const storeKey = to.definition.storeKey;
    const entry = first.get(edge.to);
    if (rowKey === undefined || storeKey === undefined || !entry) continue;
    const stored = storeKey(to.options);
    const wanted = `[${rowKey.join(', ')}]`;
    if (stored === undefined) {
      pipeline.report({
        path: entry.path,
        code: 'ETL_GRAPH_ROW_KEY',
        severity: 'warning',
        message: `\`${edge.from}\` emits a row again when it changes, and \`${edge.to}\` would store each one as a new row`,
        hint: `key the rows on ${wanted} and keep the last one (for postgres: \`unique_key: ${wanted}\`, \`on_conflict: update\`)`,
        target: 'key',
      });
      continue;
    }
    const same = stored.fields.length === rowKey.length && rowKey.every((f) => stored.fields.includes(f));
    if (!same) {
      pipeline.report({
        path: [...entry.path, ...stored.path],
        code: 'ETL_GRAPH_ROW_KEY',
        severity: 'warning',
        message: `\`${edge.from}\` identifies its rows by ${wanted}, not by [${stored.fields.join(', ')}]`,
        hint: `key \`${edge.to}\` on ${wanted}, so that a corrected row replaces the one it corrects and no other`,
      });
    } else if (!stored.replaces) {
      pipeline.report({
        path: [...entry.path, ...stored.path],
        code: 'ETL_GRAPH_ROW_KEY',
        severity: 'warning',
        message: `\`${edge.to}\` keeps the first row of a key: the corrections \`${edge.from}\` emits would be dropped`,
        hint: 'keep the last one (for postgres: `on_conflict: update`)',
      });
    }
  }
}
