/**
 * `etl graph`: the compiled graphs as one Mermaid flowchart or one Graphviz digraph, for docs and reviews.
 * Several pipelines (files, documents) become one chart with a box per pipeline. `--fields` lists instead
 * the fields and types of the records on each edge, as the loader computed them.
 */
import { loadPipelines } from '../../config/load.ts';
import type { PipelineSpec, StageKind } from '../../config/types.ts';
import { formatDiagnostic, hasErrors } from '../../diagnostics.ts';
import { buildGraph, consumersByPort, DEFAULT_PORT } from '../../graph/graph.ts';
import { describeFields, isClosed, type RecordSchema } from '../../record-schema.ts';

export type GraphFormat = 'mermaid' | 'dot';

export interface GraphOptions {
  format: GraphFormat;
  /** List the fields on each edge instead of drawing the chart. */
  fields?: boolean;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

export async function runGraph(paths: string[], options: GraphOptions): Promise<number> {
  const { pipelines, diagnostics } = await loadPipelines(paths);
  for (const d of diagnostics) options.err.write(`${formatDiagnostic(d)}\n`);
  if (hasErrors(diagnostics)) return 1;
  options.out.write(options.fields ? renderFields(pipelines) : renderGraph(pipelines, options.format));
  return 0;
}

const MERMAID_SHAPES: Record<StageKind, (id: string, label: string) => string> = {
  source: (id, label) => `${id}[/"${label}"/]`,
  transform: (id, label) => `${id}["${label}"]`,
  sink: (id, label) => `${id}[("${label}")]`,
};

const DOT_SHAPES: Record<StageKind, string> = { source: 'invhouse', transform: 'box', sink: 'cylinder' };

/**
 * A Mermaid node id for a stage of the n-th pipeline. Ids may hold `-`, which Mermaid cannot take, and
 * mapping it to `_` would make `my-src` and `my_src` one node: `_` becomes `__` and `-` becomes `_h`.
 */
export function mermaidId(pipelineIndex: number, stageId: string): string {
  return `p${pipelineIndex}_${stageId.replaceAll('_', '__').replaceAll('-', '_h')}`;
}

export function renderGraph(pipelines: readonly PipelineSpec[], format: GraphFormat): string {
  return format === 'mermaid' ? mermaid(pipelines) : dot(pipelines);
}

/**
 * The records on each edge, per output port read by some stage: `parsed → out, store`, then a line per field,
 * `?` after the name of a field some records lack.
 */
export function renderFields(pipelines: readonly PipelineSpec[]): string {
  const lines: string[] = [];
  for (const spec of pipelines) {
    if (lines.length > 0) lines.push('');
    lines.push(`${spec.name} · ${spec.file}`);
    const consumers = consumersByPort(buildGraph(spec.stages));
    for (const stage of spec.stages) {
      for (const [port, schema] of Object.entries(stage.outputSchemas ?? {})) {
        const readers = consumers.get(`${stage.id}.${port}`);
        if (!readers) continue;
        const from = port === DEFAULT_PORT ? stage.id : `${stage.id}.${port}`;
        lines.push(`  ${from} → ${[...new Set(readers)].join(', ')}`, ...fieldLines(schema).map((l) => `    ${l}`));
      }
    }
  }
  return `${lines.join('\n')}\n`;
}

function fieldLines(schema: RecordSchema): string[] {
  const fields = describeFields(schema).map((f) => ({ name: f.required ? f.name : `${f.name}?`, type: f.type }));
  const width = Math.max(0, ...fields.map((f) => f.name.length)) + 2;
  const lines = fields.map((f) => `${f.name.padEnd(width)}${f.type}`);
  if (!isClosed(schema)) lines.push(fields.length === 0 ? '(any fields)' : '(and any other field)');
  return lines;
}

function mermaid(pipelines: readonly PipelineSpec[]): string {
  const lines = ['flowchart LR'];
  pipelines.forEach((spec, index) => {
    lines.push(`  subgraph p${index}["${spec.name} · ${spec.file}"]`);
    for (const stage of spec.stages) {
      const label = `${stage.id}<br/><small>${stage.kind} · ${stage.type}</small>`;
      lines.push(`    ${MERMAID_SHAPES[stage.kind](mermaidId(index, stage.id), label)}`);
    }
    for (const edge of buildGraph(spec.stages).edges) {
      const arrow = edge.port === DEFAULT_PORT ? '-->' : `-. ${edge.port} .->`;
      lines.push(`    ${mermaidId(index, edge.from)} ${arrow} ${mermaidId(index, edge.to)}`);
    }
    lines.push('  end');
  });
  return `${lines.join('\n')}\n`;
}

function dot(pipelines: readonly PipelineSpec[]): string {
  const lines = ['digraph etl {', '  rankdir=LR;', '  node [fontname="Helvetica"];'];
  // Quoted dot ids may hold anything; `/` occurs in neither pipeline names nor stage ids.
  const node = (spec: PipelineSpec, id: string) => `"${spec.name}/${id}"`;
  pipelines.forEach((spec, index) => {
    lines.push(`  subgraph cluster_${index} {`, `    label="${spec.name} · ${spec.file}";`);
    for (const stage of spec.stages) {
      lines.push(
        `    ${node(spec, stage.id)} [shape=${DOT_SHAPES[stage.kind]}, label="${stage.id}\\n${stage.kind} · ${stage.type}"];`,
      );
    }
    for (const edge of buildGraph(spec.stages).edges) {
      const attrs = edge.port === DEFAULT_PORT ? '' : ` [label="${edge.port}", style=dashed]`;
      lines.push(`    ${node(spec, edge.from)} -> ${node(spec, edge.to)}${attrs};`);
    }
    lines.push('  }');
  });
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
