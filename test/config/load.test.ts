// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these tests are about `${VAR}` interpolation
/** What the loader hands the runtime: defaults, interpolation, secrets, files and directories. */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadPipelines, loadPipelinesFromString } from '../../engine/config/load.ts';
import type { PipelineSpec, StageSpec } from '../../engine/config/types.ts';
import { registry as realRegistry } from '../../operators/all.ts';
import { at, load, only, VALID } from './helpers.ts';
import { testRegistry } from './operators.ts';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

function stageOf(pipeline: PipelineSpec | undefined, id: string): StageSpec {
  const stage = pipeline?.stages.find((s) => s.id === id);
  if (!stage) throw new Error(`no stage ${id}`);
  return stage;
}

describe('loadPipelines', () => {
  it('applies defaults to settings, telemetry, stage keys and operator options', async () => {
    const { pipelines, diagnostics } = await load(VALID);
    expect(diagnostics).toEqual([]);
    const [p] = pipelines;
    expect(p?.settings).toEqual({
      dataDir: '.etl',
      checkpointIntervalMs: 1000,
      batchMaxRecords: 1024,
      maxBatchesInFlight: 8,
      shutdownTimeoutMs: 30_000,
      eventTimeField: 'timestamp',
      watermarkLatenessMs: 10_000,
      idleSourceMs: 60_000,
    });
    expect(p?.telemetry).toEqual({ traces: 'none' });
    expect(p?.secrets).toEqual([]);
    // A source that follows its input makes the default checkpoint interval the live one; a set one stays.
    const follows = VALID.replace('      paths: [logs/*.log]', '      paths: [logs/*.log]\n      follow: true');
    const real = (yaml: string) => loadPipelinesFromString(yaml, 'pipeline.yaml', { registry: realRegistry, env: {} });
    const live = await real(follows);
    expect(live.diagnostics).toEqual([]);
    expect(live.pipelines[0]?.settings.checkpointIntervalMs).toBe(150);
    const set = await real(follows.replace('spec:', 'spec:\n  settings: { checkpoint_interval_seconds: 2 }'));
    expect(set.diagnostics).toEqual([]);
    expect(set.pipelines[0]?.settings.checkpointIntervalMs).toBe(2000);
    const nginx = stageOf(p, 'nginx');
    expect(nginx.options).toEqual({ paths: ['logs/*.log'], follow: false, max_line_bytes: 65536 });
    expect(nginx.position).toEqual({ file: 'pipeline.yaml', line: 7, column: 5 });
    const parsed = stageOf(p, 'parsed');
    expect(parsed.options).toEqual({ format: 'auto' });
    expect(parsed.inputs).toEqual([{ stage: 'nginx', port: 'default', text: 'nginx' }]);
    expect(parsed.onError).toBe('dead_letter');
    expect(parsed.retry).toEqual({ max_attempts: 5, initial_backoff_ms: 100, max_backoff_ms: 10_000 });
    const out = stageOf(p, 'out');
    expect(out.onError).toBe('retry');
    expect(out.definition.type).toBe('file');
    expect(out.definition.kind).toBe('sink');
    expect(out.options).toEqual({ path: 'out.jsonl', format: 'jsonl', flush_interval_seconds: 1 });
  });

  it('maps settings, telemetry, on_error and retry as written', async () => {
    const yaml = VALID.replace(
      'spec:\n',
      `spec:
  settings:
    data_dir: state
    checkpoint_interval_seconds: 0.25
    batch_max_records: 10
    max_batches_in_flight: 2
    shutdown_timeout_seconds: 1.5
  telemetry:
    traces: { exporter: otlp, endpoint: "http://127.0.0.1:4318" }
    metrics: { prometheus_port: 9464 }
`,
    ).replace(
      '      inputs: [parsed]',
      '      inputs: [parsed]\n      on_error: dead_letter\n      retry: { max_attempts: 0, max_backoff_ms: 500 }',
    );
    const { pipelines, diagnostics } = await load(yaml);
    expect(diagnostics).toEqual([]);
    const [p] = pipelines;
    expect(p?.settings).toEqual({
      dataDir: 'state',
      checkpointIntervalMs: 250,
      batchMaxRecords: 10,
      maxBatchesInFlight: 2,
      shutdownTimeoutMs: 1500,
      eventTimeField: 'timestamp',
      watermarkLatenessMs: 10_000,
      idleSourceMs: 60_000,
    });
    expect(p?.telemetry).toEqual({ traces: 'otlp', otlpEndpoint: 'http://127.0.0.1:4318', prometheusPort: 9464 });
    const out = stageOf(p, 'out');
    expect(out.onError).toBe('dead_letter');
    // 0 attempts means: retry until the run stops.
    expect(out.retry).toEqual({ max_attempts: Number.POSITIVE_INFINITY, initial_backoff_ms: 100, max_backoff_ms: 500 });
    expect(out.options).not.toHaveProperty('retry');
    expect(out.options).not.toHaveProperty('on_error');
  });

  it('interpolates variables, defaults and escapes, coercing only where the schema wants a number', async () => {
    // A function replacement: in a replacement string `$$` would mean `$`.
    const yaml = VALID.replace(
      '      paths: [logs/*.log]',
      () => '      paths: ["${LOG_DIR:-/var/log}/*.log", "$${literal}"]\n      max_line_bytes: ${MAX}',
    ).replace('      path: out.jsonl', '      path: ${OUT}');
    const { pipelines, diagnostics } = await load(yaml, { MAX: '4096', OUT: '12345' });
    expect(diagnostics).toEqual([]);
    const [p] = pipelines;
    expect(stageOf(p, 'nginx').options).toMatchObject({
      paths: ['/var/log/*.log', '${literal}'],
      max_line_bytes: 4096,
    });
    // A string option stays a string even when its value looks like a number.
    expect(stageOf(p, 'out').options.path).toBe('12345');
  });

  it('uses the default of `${VAR:-default}` when the variable is set but empty', async () => {
    const yaml = VALID.replace('      path: out.jsonl', '      path: ${OUT:-fallback.jsonl}');
    const { pipelines } = await load(yaml, { OUT: '' });
    expect(stageOf(pipelines[0], 'out').options.path).toBe('fallback.jsonl');
  });

  it('records secrets and never prints them in diagnostics', async () => {
    const good = VALID.replace(
      '      path: out.jsonl',
      '      path: out.jsonl\n      url: "postgres://etl:${secret:DB_PASSWORD}@127.0.0.1/db"',
    );
    const ok = await load(good, { DB_PASSWORD: 'pa55-word' });
    expect(ok.pipelines[0]?.secrets).toEqual(['pa55-word']);
    expect(stageOf(ok.pipelines[0], 'out').options.url).toBe('postgres://etl:pa55-word@127.0.0.1/db');

    const bad = VALID.replace(
      '      paths: [logs/*.log]',
      '      paths: [logs/*.log]\n      max_line_bytes: ${secret:TOKEN}',
    );
    const result = await load(bad, { TOKEN: 'tok"en-s3cr3t' });
    const d = only(result, 'ETL_CFG_SCHEMA');
    expect(at(d)).toEqual([10, 23]);
    expect(d.message).toBe('`max_line_bytes` must be an integer; found the string "***"');
    expect(JSON.stringify(result.diagnostics)).not.toContain('s3cr3t');
  });

  it('requires a source, a sink and inputs for transforms and sinks', async () => {
    const yaml = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: empty }
spec:
  operators:
    lonely: { type: parse }
`;
    const result = await load(yaml);
    expect(result.diagnostics.map((d) => `${d.line}:${d.column} ${d.code}`)).toEqual([
      '4:1 ETL_GRAPH_NO_SOURCE',
      '4:1 ETL_GRAPH_NO_SINK',
      '6:5 ETL_GRAPH_NO_INPUT',
      '6:5 ETL_GRAPH_UNREAD_OUTPUT',
    ]);
  });

  it('warns about an output nobody reads but still returns the pipeline', async () => {
    const yaml = VALID.replace('  operators:', '    idle:\n      type: stdin\n  operators:');
    const result = await load(yaml);
    const d = only(result, 'ETL_GRAPH_UNREAD_OUTPUT');
    expect(d.severity).toBe('warning');
    expect(at(d)).toEqual([10, 5]);
    expect(d.message).toBe('nothing reads the output of source `idle`');
    expect(result.pipelines).toHaveLength(1);
  });

  it('tells that sources take no inputs', async () => {
    const result = await load(
      VALID.replace('      paths: [logs/*.log]', '      paths: [logs/*.log]\n      inputs: [out]'),
    );
    const d = only(result, 'ETL_CFG_UNKNOWN_KEY');
    expect(at(d)).toEqual([10, 7]);
    expect(d.hint).toBe('sources read from outside the pipeline; they take no `inputs`');
  });

  it('loads every *.yaml and *.yml below a directory, sorted, and wants unique pipeline names', async () => {
    const result = await loadPipelines(['dir'], { cwd: FIXTURES, registry: testRegistry, env: {} });
    expect(result.files).toEqual(['dir/b.yaml', 'dir/nested/a.yml', 'dir/nested/duplicate.yaml']);
    expect(result.pipelines.map((p) => [p.name, p.file])).toEqual([
      ['b-pipeline', 'dir/b.yaml'],
      ['a-pipeline', 'dir/nested/a.yml'],
    ]);
    const d = only(result, 'ETL_CFG_DUPLICATE_PIPELINE');
    expect([d.file, d.line, d.column]).toEqual(['dir/nested/duplicate.yaml', 5, 9]);
    expect(d.message).toBe('pipeline name `b-pipeline` is already used at dir/b.yaml:3:19');
  });

  it('loads several documents of one file', async () => {
    const result = await loadPipelines(['valid/two.yaml'], { cwd: FIXTURES, registry: testRegistry, env: {} });
    expect(result.diagnostics).toEqual([]);
    expect(result.pipelines.map((p) => p.name)).toEqual(['web-access', 'generated']);
    expect(result.pipelines[0]?.description).toBe('nginx access logs to JSON lines');
    expect(result.pipelines[0]?.settings.checkpointIntervalMs).toBe(2500);
    expect(stageOf(result.pipelines[0], 'rejects').inputs).toEqual([
      { stage: 'parsed', port: 'dead_letter', text: 'parsed.dead_letter' },
    ]);
  });

  it('reports a missing path and an empty file', async () => {
    const missing = await loadPipelines(['nope.yaml'], { cwd: FIXTURES, registry: testRegistry });
    expect(missing.diagnostics).toEqual([
      {
        file: 'nope.yaml',
        line: 0,
        column: 0,
        path: '',
        code: 'ETL_CFG_NOT_FOUND',
        severity: 'error',
        message: 'no such file or directory: nope.yaml',
      },
    ]);
    const empty = await load('# nothing here\n');
    expect(only(empty, 'ETL_CFG_NOT_FOUND').message).toBe('pipeline.yaml holds no pipeline document');
  });

  it('honours YAML anchors and merge keys', async () => {
    const yaml = `${VALID.replace('    out:\n', '    out: &sink\n')}    rejects:
      <<: *sink
      inputs: [parsed.dead_letter]
      path: rejects.jsonl
`;
    const result = await load(yaml);
    expect(result.diagnostics).toEqual([]);
    const rejects = stageOf(result.pipelines[0], 'rejects');
    expect(rejects.type).toBe('file');
    expect(rejects.inputs.map((i) => i.text)).toEqual(['parsed.dead_letter']);
    expect(rejects.options).toMatchObject({ path: 'rejects.jsonl', format: 'jsonl' });
  });

  it('reports duplicate keys outside the stage maps as YAML problems', async () => {
    const result = await load(VALID.replace('  name: web', '  name: web\n  name: again'));
    const d = only(result, 'ETL_CFG_YAML');
    expect(at(d)).toEqual([5, 3]);
    expect(d.message).toBe('duplicate key `name`');
  });

  it('loads a pipeline against the real operator registry', async () => {
    const yaml = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: real }
spec:
  sources:
    nginx: { type: file, paths: ["logs/*.log"] }
  sinks:
    out: { type: file, inputs: [nginx], path: out/lines.jsonl }
`;
    // No registry given: the loader uses operators/registry.ts.
    const result = await loadPipelinesFromString(yaml, 'real.yaml', { env: {} });
    expect(result.diagnostics).toEqual([]);
    const [p] = result.pipelines;
    expect(stageOf(p, 'nginx').definition).toBe(realRegistry.find((d) => d.kind === 'source' && d.type === 'file'));
    expect(stageOf(p, 'nginx').options.paths).toEqual(['logs/*.log']);
    expect(stageOf(p, 'out').options).toMatchObject({ path: 'out/lines.jsonl', format: 'jsonl' });
  });

  it('loads the definitions of the operators named, of any named through a variable, and checks them all', async () => {
    // Only the operators whose type the document names are loaded; a type read from a variable could be any.
    const yaml = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: real }
spec:
  sources:
    nginx: { type: file, paths: ["logs/*.log"] }
  operators:
    checked:
      type: \${CHECK_TYPE}
      inputs: [nginx]
      rules: [{ name: a, required: { fields: [message] } }, { name: a, required: { fields: [message] } }]
  sinks:
    out: { type: stdout, inputs: [checked], formatt: jsonl }
`;
    const result = await loadPipelinesFromString(yaml, 'real.yaml', { env: { CHECK_TYPE: 'validate' } });
    const messages = result.diagnostics.map((d) => `${d.code} ${d.path}`);
    // The schema pass (the stdout sink's unknown key) and validate's own cross-field check (a name used twice) ran.
    expect(messages).toContain('ETL_CFG_UNKNOWN_KEY spec.sinks.out.formatt');
    expect(messages).toContain('ETL_CFG_INVALID spec.operators.checked.rules[1].name');
    // An unknown type still lists every registered one of its kind, loaded or not.
    const unknown = await loadPipelinesFromString(yaml, 'real.yaml', { env: { CHECK_TYPE: 'valdate' } });
    const message = unknown.diagnostics.find((d) => d.code === 'ETL_CFG_UNKNOWN_TYPE')?.message ?? '';
    expect(message).toContain('did you mean `validate`');
    expect(message).toContain('aggregate');
  });
});
