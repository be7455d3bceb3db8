/**
 * Pipelines that used to validate and then fail, or corrupt data, at run time: `etl validate` refuses them,
 * at the line of the mistake, with what to do instead. With the real operators, as users write them.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type LoadResult, loadPipelines, loadPipelinesFromString } from '../../engine/config/load.ts';
import type { Diagnostic } from '../../engine/diagnostics.ts';
import { at, only } from './helpers.ts';

const load = (yaml: string): Promise<LoadResult> => loadPipelinesFromString(yaml, 'pipeline.yaml', { env: {} });
const errors = (result: LoadResult): Diagnostic[] => result.diagnostics.filter((d) => d.severity === 'error');

const pipeline = (sinks: string, operators = 'parsed: { type: parse, inputs: [logs] }') => `apiVersion: etl/v1
kind: Pipeline
metadata: { name: p }
spec:
  sources:
    logs: { type: file, paths: [logs/*.log] }
  operators:
    ${operators}
  sinks:
${sinks}`;

describe('what a postgres sink takes follows its record schema', () => {
  it('refuses raw lines, and says to parse them', async () => {
    const result = await load(pipeline('    rows: { type: postgres, inputs: [logs], table: t }\n'));
    const d = only(result, 'ETL_GRAPH_KIND_MISMATCH');
    expect(at(d)).toEqual([10, 38]);
    expect(d.message).toBe(
      'stage `rows` takes access records, error-log records or dead letters but `logs` sends raw lines',
    );
    expect(d.hint).toBe('add a `parse` stage between them');
    expect(errors(result)).toHaveLength(1);
  });

  it('refuses error-log records and dead letters into an access table, and names the record schema to use', async () => {
    const result = await load(
      pipeline(
        '    rows: { type: postgres, inputs: [parsed], table: t, record_schema: access }\n' +
          '    dl: { type: postgres, inputs: [parsed.dead_letter], table: d, record_schema: access }\n',
        'parsed: { type: parse, inputs: [logs], format: error_log }',
      ),
    );
    const found = errors(result);
    expect(found.map((d) => d.code)).toEqual(['ETL_GRAPH_KIND_MISMATCH', 'ETL_GRAPH_KIND_MISMATCH']);
    expect(found[0]?.message).toBe('stage `rows` takes access records but `parsed` sends error-log records');
    expect(found[0]?.hint).toContain('`record_schema: error_log`');
    expect(found[1]?.hint).toContain('`record_schema: dead_letter`');
  });

  it('takes error-log records and dead letters into tables of their columns with no record_schema', async () => {
    const result = await load(
      pipeline(
        '    rows: { type: postgres, inputs: [parsed], table: t }\n' +
          '    dl: { type: postgres, inputs: [parsed.dead_letter], table: d, time_column: time }\n',
        'parsed: { type: parse, inputs: [logs], format: error_log }',
      ),
    );
    expect(errors(result)).toEqual([]);
  });

  it('takes them into tables of their own record schema', async () => {
    const result = await load(
      pipeline(
        '    rows: { type: postgres, inputs: [parsed], table: t, record_schema: error_log }\n' +
          '    dl: { type: postgres, inputs: [parsed.dead_letter], table: d, record_schema: dead_letter, time_column: time }\n' +
          '    lines: { type: postgres, inputs: [logs], table: l, record_schema: none, columns: { message: text }, partition: none }\n',
        'parsed: { type: parse, inputs: [logs], format: error_log }',
      ),
    );
    expect(errors(result)).toEqual([]);
  });

  it('names the date-time columns a partitioned dead-letter table can use', async () => {
    const result = await load(
      pipeline('    dl: { type: postgres, inputs: [parsed.dead_letter], table: d, record_schema: dead_letter }\n'),
    );
    expect(only(result, 'ETL_GRAPH_UNKNOWN_FIELD').hint).toContain('set `time_column: time`');
  });
});

describe('two sinks writing one file', () => {
  it('are refused in one pipeline, however the path is written', async () => {
    const result = await load(
      pipeline(
        '    out: { type: file, inputs: [parsed], path: out/all.jsonl }\n' +
          '    rejects: { type: file, inputs: [parsed.dead_letter], path: ./out/../out/all.jsonl }\n',
      ),
    );
    const d = only(result, 'ETL_GRAPH_SHARED_TARGET');
    expect(at(d)).toEqual([11, 5]);
    expect(d.message).toMatch(/^sink `rejects` writes \/.*\/out\/all\.jsonl, as sink `out` \(line 10\) does$/);
    expect(result.pipelines).toEqual([]);
  });

  it('are refused across pipelines loaded together', async () => {
    const second = `---
apiVersion: etl/v1
kind: Pipeline
metadata: { name: q }
spec:
  sources:
    gen: { type: generator, count: 1 }
  sinks:
    out: { type: file, inputs: [gen], path: out/all.jsonl }
`;
    const result = await load(pipeline('    out: { type: file, inputs: [parsed], path: out/all.jsonl }\n') + second);
    const d = only(result, 'ETL_GRAPH_SHARED_TARGET');
    expect(d.line).toBe(19);
    expect(result.pipelines.map((p) => p.name)).toEqual(['p']);
  });

  it('distinct files are fine', async () => {
    const result = await load(
      pipeline(
        '    out: { type: file, inputs: [parsed], path: out/all.jsonl }\n' +
          '    rejects: { type: file, inputs: [parsed.dead_letter], path: out/rejects.jsonl }\n',
      ),
    );
    expect(errors(result)).toEqual([]);
  });
});

describe('words other tools use', () => {
  it('a misspelt built-in format gets a did-you-mean', async () => {
    const result = await load(
      pipeline(
        '    out: { type: file, inputs: [parsed], path: out.jsonl }\n',
        'parsed: { type: parse, inputs: [logs], format: combind }',
      ),
    );
    const d = only(result, 'ETL_CFG_SCHEMA');
    expect(at(d)).toEqual([8, 52]);
    expect(d.message).toMatch(/— did you mean `combined`\?$/);
    expect(d.message).toContain('a map with `apache`, a map with `nginx` or a map with `json`');
  });

  it('`transforms:` is understood as `operators:`, and its stages still count for the inputs', async () => {
    const yaml = pipeline('    out: { type: file, inputs: [parsd], path: out.jsonl }\n').replace(
      '  operators:',
      '  transforms:',
    );
    const result = await load(yaml);
    const section = only(result, 'ETL_CFG_UNKNOWN_KEY');
    expect(at(section)).toEqual([7, 3]);
    expect(section.message).toBe('unknown key `transforms` — its stages go under `operators`');
    expect(section.hint).toContain('rename `transforms:` to `operators:`');
    const input = only(result, 'ETL_GRAPH_UNKNOWN_INPUT');
    expect(input.message).toBe('input `parsd` names no stage — did you mean `parsed`?');
    expect(input.hint).toBe('stages: logs, parsed');
    // `logs` is read by `parsed`: no "nothing reads" warning.
    expect(result.diagnostics.filter((d) => d.code === 'ETL_GRAPH_UNREAD_OUTPUT')).toEqual([]);
  });
});

describe('etl validate <dir>', () => {
  const dir = mkdtempSync(join(tmpdir(), 'etl-validate-dir-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const write = (path: string, text: string) => {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  };

  it('reads the pipelines and skips hidden folders, node_modules and YAML that is not a pipeline', async () => {
    write('pipelines/a.yaml', pipeline('    out: { type: file, inputs: [parsed], path: out/a.jsonl }\n'));
    write(
      'pipelines/broken.yaml',
      pipeline('    out: { type: file, inputs: [parsed], path: out/b.jsonl }\n').replace('name: p', 'name: b') +
        '    extra: { type: file, inputs: [parsed], pth: x }\n',
    );
    write('docker-compose.yml', 'services:\n  postgres:\n    image: postgres:16\n');
    write('.github/workflows/ci.yml', 'on: [push]\njobs: {}\n');
    write('node_modules/pkg/config.yaml', 'apiVersion: etl/v1\nthis: [is not read\n');
    write('helm/template.yaml', 'kind: Deployment\nmetadata: {{ .Values.name }}\n');
    const result = await loadPipelines(['.'], { cwd: dir, env: {} });
    expect(result.files).toEqual(['pipelines/a.yaml', 'pipelines/broken.yaml']);
    expect(result.skipped).toEqual(['docker-compose.yml', 'helm/template.yaml']);
    expect(result.pipelines.map((p) => p.name)).toEqual(['p']);
    const d = only(result, 'ETL_CFG_UNKNOWN_KEY');
    expect(d.file).toBe('pipelines/broken.yaml');
  });

  it('says so when a directory holds YAML but no pipeline', async () => {
    write('other/compose.yaml', 'services: {}\n');
    const result = await loadPipelines(['other'], { cwd: dir, env: {} });
    expect(errors(result).map((d) => d.message)).toEqual([
      'no pipeline under other: none of its YAML files is an etl pipeline',
    ]);
  });

  it('a file named on the command line must be a pipeline', async () => {
    const result = await loadPipelines(['docker-compose.yml'], { cwd: dir, env: {} });
    expect(errors(result).length).toBeGreaterThan(0);
  });
});

describe('max_in_flight', () => {
  it('is refused above 1 for an operator that handles one batch at a time', async () => {
    const result = await load(
      pipeline(
        '    out: { type: file, inputs: [parsed], path: out.jsonl, max_in_flight: 4 }\n',
        'parsed: { type: parse, inputs: [logs], max_in_flight: 1 }',
      ),
    );
    const d = only(result, 'ETL_CFG_INVALID');
    expect(d.message).toBe('the `file` sink handles one batch at a time; max_in_flight must be 1');
    expect(at(d)).toEqual([10, 74]);
  });
});

describe('workers', () => {
  it('is refused on a transform that keeps state across batches, at the key', async () => {
    const result = await load(
      pipeline(
        '    out: { type: blackhole, inputs: [seen] }\n',
        `parsed: { type: parse, inputs: [logs], workers: 2 }
    seen: { type: dedupe, inputs: [parsed], fields: [client_ip], workers: 2 }`,
      ),
    );
    const d = only(result, 'ETL_CFG_INVALID');
    expect(d.message).toBe(
      'the `dedupe` transform keeps state across batches; only stateless transforms run on worker threads',
    );
    expect(at(d)).toEqual([9, 75]);
  });

  it('is refused on threat_intel when it looks addresses up in AbuseIPDB through a shared cache', async () => {
    const result = await load(
      pipeline(
        '    out: { type: blackhole, inputs: [intel] }\n',
        `parsed: { type: parse, inputs: [logs], workers: auto }
    intel: { type: threat_intel, inputs: [parsed], workers: 2, abuseipdb: { api_key: k, cache: cache } }`,
      ).replace('spec:\n', 'spec:\n  resources:\n    cache: { type: redis }\n'),
    );
    const d = errors(result).find((x) => x.path?.includes('workers'));
    expect(d?.message).toBe(
      'the `threat_intel` transform keeps state or uses shared resources with these options; it runs on the main thread only',
    );
  });

  it('is taken on stateless transforms, as a count or `auto`', async () => {
    const result = await load(
      pipeline(
        '    out: { type: blackhole, inputs: [agents] }\n',
        `parsed: { type: parse, inputs: [logs], workers: auto }
    agents: { type: user_agent, inputs: [parsed], workers: 3 }`,
      ),
    );
    expect(errors(result)).toEqual([]);
    const stages = result.pipelines[0]?.stages ?? [];
    expect(stages.find((s) => s.id === 'agents')?.workers).toBe(3);
    expect(stages.find((s) => s.id === 'parsed')?.workers).toBeGreaterThanOrEqual(1);
    expect(stages.find((s) => s.id === 'out')?.workers).toBe(1);
  });
});
