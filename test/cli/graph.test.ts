/** `etl graph`: one chart for every pipeline given, a node per stage, whatever the stage ids look like. */
import { describe, expect, it } from 'vitest';
import { mermaidId, renderFields, renderGraph } from '../../engine/cli/commands/graph.ts';
import { loadPipelinesFromString } from '../../engine/config/load.ts';

const two = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: first }
spec:
  sources:
    my-src: { type: generator, count: 1 }
    my_src: { type: generator, count: 1 }
  sinks:
    out: { type: stdout, inputs: [my-src, my_src] }
---
apiVersion: etl/v1
kind: Pipeline
metadata: { name: second }
spec:
  sources:
    my-src: { type: generator, count: 1 }
  operators:
    parsed: { type: parse, inputs: [my-src] }
  sinks:
    out: { type: stdout, inputs: [parsed] }
    rejects: { type: stdout, inputs: [parsed.dead_letter] }
`;

describe('etl graph', () => {
  it('keeps ids that differ only in - and _ apart, and pipelines apart, in one Mermaid chart', async () => {
    const { pipelines, diagnostics } = await loadPipelinesFromString(two, 'two.yaml');
    expect(diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const chart = renderGraph(pipelines, 'mermaid');
    expect(chart.match(/^flowchart/gm)).toHaveLength(1);
    expect(chart).toContain('subgraph p0["first · two.yaml"]');
    expect(chart).toContain('subgraph p1["second · two.yaml"]');
    const nodes = [...chart.matchAll(/^ {4}(\w+)[[(]/gm)].map((m) => m[1]);
    expect(nodes).toEqual(['p0_my_hsrc', 'p0_my__src', 'p0_out', 'p1_my_hsrc', 'p1_parsed', 'p1_out', 'p1_rejects']);
    expect(chart).toContain('p0_my_hsrc --> p0_out');
    expect(chart).toContain('p0_my__src --> p0_out');
    expect(chart).toContain('p1_parsed -. dead_letter .-> p1_rejects');
  });

  it('maps distinct stage ids to distinct Mermaid ids', () => {
    const ids = ['a-b', 'a_b', 'a__b', 'a_hb', 'a-_b', 'a_-b', 'a--b', 'ab'];
    const mapped = ids.map((id) => mermaidId(0, id));
    expect(new Set(mapped).size).toBe(ids.length);
    for (const id of mapped) expect(id).toMatch(/^\w+$/);
  });

  it('draws one Graphviz digraph with a cluster per pipeline', async () => {
    const { pipelines } = await loadPipelinesFromString(two, 'two.yaml');
    const chart = renderGraph(pipelines, 'dot');
    expect(chart.match(/^digraph/gm)).toHaveLength(1);
    expect(chart).toContain('subgraph cluster_0 {');
    expect(chart).toContain('subgraph cluster_1 {');
    expect(chart).toContain('"first/my-src" -> "first/out";');
    expect(chart).toContain('"first/my_src" -> "first/out";');
    expect(chart).toContain('"second/parsed" -> "second/rejects" [label="dead_letter", style=dashed];');
  });

  it('lists the fields and types on each edge with --fields, once per port however many stages read it', async () => {
    const { pipelines } = await loadPipelinesFromString(two, 'two.yaml');
    const listing = renderFields(pipelines);
    expect(listing.startsWith('first · two.yaml\n  my-src → out\n    message  string\n')).toBe(true);
    expect(listing).toContain('\nsecond · two.yaml\n  my-src → parsed\n    message  string\n  parsed → out\n');
    expect(listing).toContain('    timestamp                  string (date-time) | null\n');
    expect(listing).toContain('    forwarded_for              string[] | null\n');
    expect(listing).toContain(
      '  parsed.dead_letter → rejects\n    stage        string\n    reason       string\n    time         string (date-time)\n',
    );
    expect(listing).toContain('    raw_base64                 string | null\n');
    expect(listing).toContain('    raw_base64?  string\n');
    expect(listing).not.toContain('parsed.error_log');
  });
});
