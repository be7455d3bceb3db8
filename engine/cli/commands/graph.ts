/** `etl graph`: the compiled graph as Mermaid or Graphviz dot, for docs and reviews. */
import type { PipelineSpec } from '../../config/types.ts';
import { buildGraph, DEFAULT_PORT } from '../../graph/graph.ts';

export type GraphFormat = 'mermaid' | 'dot';

const SHAPES = {
  mermaid: {
    source: (id: string, label: string) => `${id}[/"${label}"/]`,
    transform: (id: string, label: string) => `${id}["${label}"]`,
    sink: (id: string, label: string) => `${id}[("${label}")]`,
  },
} as const;

function label(spec: PipelineSpec, id: string): string {
  const stage = spec.stages.find((s) => s.id === id);
  return stage ? `${id}<br/><small>${stage.kind} · ${stage.type}</small>` : id;
}

/** Node ids are quoted or sanitised: stage ids may contain `-`, which both formats treat specially. */
const safeId = (id: string) => `n_${id.replace(/[^A-Za-z0-9_]/g, '_')}`;

export function renderGraph(spec: PipelineSpec, format: GraphFormat): string {
  const graph = buildGraph(spec.stages);
  const lines: string[] = [];
  if (format === 'mermaid') {
    lines.push('flowchart LR', `  %% pipeline ${spec.name} (${spec.file})`);
    for (const stage of spec.stages) {
      lines.push(`  ${SHAPES.mermaid[stage.kind](safeId(stage.id), label(spec, stage.id))}`);
    }
    for (const edge of graph.edges) {
      const arrow = edge.port === DEFAULT_PORT ? '-->' : `-. ${edge.port} .->`;
      lines.push(`  ${safeId(edge.from)} ${arrow} ${safeId(edge.to)}`);
    }
  } else {
    lines.push(`digraph "${spec.name}" {`, '  rankdir=LR;', '  node [fontname="Helvetica"];');
    for (const stage of spec.stages) {
      const shape = stage.kind === 'source' ? 'invhouse' : stage.kind === 'sink' ? 'cylinder' : 'box';
      lines.push(`  "${stage.id}" [shape=${shape}, label="${stage.id}\\n${stage.kind} · ${stage.type}"];`);
    }
    for (const edge of graph.edges) {
      const attrs = edge.port === DEFAULT_PORT ? '' : ` [label="${edge.port}", style=dashed]`;
      lines.push(`  "${edge.from}" -> "${edge.to}"${attrs};`);
    }
    lines.push('}');
  }
  return `${lines.join('\n')}\n`;
}
