/** What counts as a change of a pipeline: its content, not where or how it is written. */
import { describe, expect, it } from 'vitest';
import { loadPipelinesFromString } from '../../engine/config/load.ts';
import type { PipelineSpec } from '../../engine/config/types.ts';
import { diffVersions, fingerprint } from '../../engine/serve/version.ts';

async function spec(text: string): Promise<PipelineSpec> {
  const { pipelines, diagnostics } = await loadPipelinesFromString(text, 'p.yaml', { env: { OUT: '/tmp/a.jsonl' } });
  expect(diagnostics).toEqual([]);
  return pipelines[0] as PipelineSpec;
}

const BASE = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: web }
spec:
  sources:
    logs: { type: generator, count: 10 }
  operators:
    parsed: { type: parse, inputs: [logs], format: auto }
  sinks:
    out: { type: file, inputs: [parsed], path: "\${OUT}" }
`;

describe('pipeline versions', () => {
  it('are equal when only comments, layout or key order differ', async () => {
    const reformatted = `# a comment
apiVersion: etl/v1
kind: Pipeline
metadata:
  name: web
spec:
  sinks:
    out:
      path: /tmp/a.jsonl
      inputs: [parsed]
      type: file
  sources:
    logs: { count: 10, type: generator }
  operators:
    parsed: { format: auto, type: parse, inputs: [logs] }
`;
    expect(fingerprint(await spec(reformatted))).toBe(fingerprint(await spec(BASE)));
    expect(diffVersions(await spec(BASE), await spec(reformatted))).toEqual([]);
  });

  it('tell stage by stage and setting by setting what changed', async () => {
    const changed = BASE.replace('format: auto', 'format: combined')
      .replace('  sinks:\n', '  sinks:\n    more: { type: blackhole, inputs: [parsed] }\n')
      .replace('spec:\n', 'spec:\n  settings: { checkpoint_interval_seconds: 5 }\n');
    const before = await spec(BASE);
    const after = await spec(changed);
    expect(fingerprint(after)).not.toBe(fingerprint(before));
    expect(diffVersions(before, after)).toEqual([
      { path: 'settings.checkpointIntervalMs', change: 'changed' },
      { path: 'stages.parsed', change: 'changed' },
      { path: 'stages.more', change: 'added' },
    ]);
    expect(diffVersions(after, before)).toContainEqual({ path: 'stages.more', change: 'removed' });
    expect(diffVersions(undefined, before)).toEqual([{ path: '', change: 'added' }]);
  });
});
