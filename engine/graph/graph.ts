/**
 * The pipeline as a pure data structure, shared by `validate`, `graph` and `apply`.
 * Ports are addressed as `stage` (its `default` port) or `stage.port`.
 */
import type { RecordKind } from '../record.ts';
import type { InputRef, StageSpec } from '../config/types.ts';

export const DEFAULT_PORT = 'default';
export const DEAD_LETTER_PORT = 'dead_letter';

export interface Edge {
  readonly from: string;
  readonly port: string;
  readonly to: string;
}

export interface Graph {
  readonly stages: ReadonlyMap<string, StageSpec>;
  readonly edges: readonly Edge[];
  /** Stage ids, every stage after all of its inputs; undefined when there is a cycle. */
  readonly order: readonly string[] | undefined;
  /** One cycle as a path `a -> b -> a`, when there is one. */
  readonly cycle: readonly string[] | undefined;
}

/** Ports a stage offers and the record kind on each. Every transform and sink has a `dead_letter` port. */
export function outputPorts(stage: StageSpec): Record<string, RecordKind> {
  const def = stage.definition;
  if (def.kind === 'sink') return { [DEAD_LETTER_PORT]: 'dead_letter' };
  const declared = def.outputsFor ? def.outputsFor(stage.options) : def.outputs;
  return def.kind === 'transform' ? { ...declared, [DEAD_LETTER_PORT]: 'dead_letter' } : { ...declared };
}

/** Record kinds a transform or sink takes on its inputs with its options. */
export function acceptedKinds(stage: StageSpec): readonly RecordKind[] {
  const def = stage.definition;
  if (def.kind === 'source') return [];
  return def.acceptsFor ? def.acceptsFor(stage.options) : def.accepts;
}

export function parseInputRef(text: string): InputRef {
  const dot = text.indexOf('.');
  return dot < 0
    ? { stage: text, port: DEFAULT_PORT, text }
    : { stage: text.slice(0, dot), port: text.slice(dot + 1), text };
}

export function buildGraph(stages: readonly StageSpec[]): Graph {
  const byId = new Map<string, StageSpec>();
  for (const s of stages) if (!byId.has(s.id)) byId.set(s.id, s);
  const edges: Edge[] = [];
  for (const s of byId.values()) {
    for (const input of s.inputs) {
      if (byId.has(input.stage)) edges.push({ from: input.stage, port: input.port, to: s.id });
    }
  }
  const { order, cycle } = topologicalOrder([...byId.keys()], edges);
  return { stages: byId, edges, order, cycle };
}

function topologicalOrder(ids: string[], edges: Edge[]): { order?: string[]; cycle?: string[] } {
  const downstream = new Map<string, string[]>(ids.map((id) => [id, []]));
  const indegree = new Map<string, number>(ids.map((id) => [id, 0]));
  for (const e of edges) {
    downstream.get(e.from)?.push(e.to);
    indegree.set(e.to, (indegree.get(e.to) ?? 0) + 1);
  }
  const ready = ids.filter((id) => indegree.get(id) === 0);
  const order: string[] = [];
  while (ready.length > 0) {
    const id = ready.shift() as string;
    order.push(id);
    for (const next of downstream.get(id) ?? []) {
      const left = (indegree.get(next) ?? 0) - 1;
      indegree.set(next, left);
      if (left === 0) ready.push(next);
    }
  }
  if (order.length === ids.length) return { order };
  return {
    cycle: findCycle(
      ids.filter((id) => (indegree.get(id) ?? 0) > 0),
      downstream,
    ),
  };
}

function findCycle(candidates: string[], downstream: Map<string, string[]>): string[] {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (id: string): string[] | undefined => {
    state.set(id, 'open');
    stack.push(id);
    for (const next of downstream.get(id) ?? []) {
      if (state.get(next) === 'open') return [...stack.slice(stack.indexOf(next)), next];
      if (!state.has(next)) {
        const found = visit(next);
        if (found) return found;
      }
    }
    stack.pop();
    state.set(id, 'done');
    return undefined;
  };
  for (const id of candidates) {
    if (!state.has(id)) {
      const found = visit(id);
      if (found) return found;
    }
  }
  return candidates;
}

/** Consumers of each `stage.port`, for fan-out reference counting. */
export function consumersByPort(graph: Graph): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const e of graph.edges) {
    const key = `${e.from}.${e.port}`;
    const list = out.get(key);
    if (list) list.push(e.to);
    else out.set(key, [e.to]);
  }
  return out;
}

/** The sinks the records of stage `id` reach, through any path. */
export function downstreamSinks(graph: Graph, id: string): string[] {
  return reachable(graph, id, 'down', 'sink');
}

/** The sources whose records can reach stage `id`, in no particular order. */
export function upstreamSources(graph: Graph, id: string): string[] {
  return reachable(graph, id, 'up', 'source');
}

/** The stages of `kind` found from `id` following edges downstream or upstream; the search stops at each. */
function reachable(graph: Graph, id: string, direction: 'down' | 'up', kind: 'source' | 'sink'): string[] {
  const found = new Set<string>();
  const seen = new Set<string>([id]);
  const queue = [id];
  while (queue.length > 0) {
    const at = queue.pop() as string;
    for (const edge of graph.edges) {
      const [near, far] = direction === 'down' ? [edge.from, edge.to] : [edge.to, edge.from];
      if (near !== at || seen.has(far)) continue;
      seen.add(far);
      if (graph.stages.get(far)?.kind === kind) found.add(far);
      else queue.push(far);
    }
  }
  return [...found];
}
