// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these tests are about `${VAR}` interpolation
/** Every kind of problem, with the exact line and column it is reported at. */
import { describe, expect, it } from 'vitest';
import { loadPipelinesFromString } from '../../engine/config/load.ts';
import { formatDiagnostic } from '../../engine/diagnostics.ts';
import { at, load, only, VALID } from './helpers.ts';

describe('loader diagnostics', () => {
  it('accepts the valid pipeline without any diagnostic', async () => {
    const result = await load(VALID);
    expect(result.diagnostics).toEqual([]);
    expect(result.pipelines.map((p) => p.name)).toEqual(['web']);
  });

  it('points at an unknown key and suggests the known one', async () => {
    const result = await load(VALID.replace('      paths: [logs/*.log]', '      pahts: [logs/*.log]'));
    const d = only(result, 'ETL_CFG_UNKNOWN_KEY');
    expect(at(d)).toEqual([9, 7]);
    expect(d.message).toBe('unknown key `pahts` — did you mean `paths`?');
    expect(d.path).toBe('spec.sources.nginx.pahts');
    // The misspelt key is one problem, not also "missing required key `paths`".
    expect(result.diagnostics.filter((x) => x.severity === 'error')).toHaveLength(1);
    expect(result.pipelines).toEqual([]);
  });

  it('says what type was expected and what was found', async () => {
    const result = await load(
      VALID.replace('      paths: [logs/*.log]', '      paths: [logs/*.log]\n      follow: sometimes'),
    );
    const d = only(result, 'ETL_CFG_SCHEMA');
    expect(at(d)).toEqual([10, 15]);
    expect(d.message).toBe('`follow` must be true or false; found the string "sometimes"');
  });

  it('lists the allowed values of an enum and suggests the closest', async () => {
    const result = await load(VALID.replace('      path: out.jsonl', '      path: out.jsonl\n      format: jsnl'));
    const d = only(result, 'ETL_CFG_INVALID');
    expect(at(d)).toEqual([19, 15]);
    expect(d.message).toBe('`format` must be one of `jsonl`, `csv`; found the string "jsnl"');
    expect(d.hint).toBe('did you mean `jsonl`?');
  });

  it('collapses the branches of a oneOf into one problem, or keeps the branch the value was meant for', async () => {
    const asNumber = await load(VALID.replace('      path: out.jsonl', '      path: out.jsonl\n      compression: 5'));
    expect(asNumber.diagnostics).toHaveLength(1);
    expect(at(asNumber.diagnostics[0] as never)).toEqual([19, 20]);
    expect(asNumber.diagnostics[0]?.message).toBe('`compression` must be true or false or a map; found the number 5');

    const asMap = await load(
      VALID.replace('      path: out.jsonl', '      path: out.jsonl\n      compression: { levle: 3 }'),
    );
    expect(asMap.diagnostics).toHaveLength(1);
    expect(at(asMap.diagnostics[0] as never)).toEqual([19, 22]);
    expect(asMap.diagnostics[0]?.message).toBe('unknown key `levle` — did you mean `level`?');
  });

  it('names the misspelt key of a map meant as one of several forms told apart by their keys', async () => {
    // A validate rule is `{ name, <check> }` for one of a dozen checks: the error was a list of all of them.
    const yaml = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: rules }
spec:
  sources:
    logs: { type: stdin }
  operators:
    parsed: { type: parse, inputs: [logs] }
    checked:
      type: validate
      inputs: [parsed]
      rules:
        - { name: bytes, nonnegative: { field: bytes } }
        - { name: status, status: { field: status, maximum: 3 } }
  sinks:
    out: { type: blackhole, inputs: [checked] }
`;
    const result = await loadPipelinesFromString(yaml, 'rules.yaml');
    expect(result.diagnostics.map((d) => [at(d), d.message])).toEqual([
      [[13, 26], 'unknown key `nonnegative` — did you mean `non_negative`?'],
      [[14, 52], 'unknown key `maximum`'],
    ]);
  });

  it('checks the field names of a stage whose other options are wrong, in the same pass', async () => {
    const yaml = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: both }
spec:
  sources:
    logs: { type: stdin }
  operators:
    parsed: { type: parse, inputs: [logs] }
    checked:
      type: validate
      inputs: [parsed]
      rules:
        - { name: ip, action: dropp, ip: { field: clientip } }
  sinks:
    out: { type: blackhole, inputs: [checked] }
`;
    const result = await loadPipelinesFromString(yaml, 'both.yaml');
    expect(result.diagnostics.map((d) => [at(d), d.code])).toEqual([
      [[13, 31], 'ETL_CFG_INVALID'],
      [[13, 51], 'ETL_GRAPH_UNKNOWN_FIELD'],
    ]);
    // Malformed options say nothing more than their own problem: no name made of a string where a list belongs.
    const rollup = yaml.replace(
      / {4}checked:[\s\S]*(?= {2}sinks:)/,
      '    checked:\n      type: aggregate\n      inputs: [parsed]\n' +
        '      window_seconds: 60\n      group_by: path\n      aggregates: { requests: { fn: count } }\n',
    );
    const malformed = await loadPipelinesFromString(rollup, 'rollup.yaml');
    expect(malformed.diagnostics.map((d) => [d.code, d.message])).toEqual([
      ['ETL_CFG_SCHEMA', '`group_by` must be a list; found the string "path"'],
    ]);
  });

  it('says a key has no value rather than quoting what coercion made of it', async () => {
    const result = await load(VALID.replace('      path: out.jsonl', '      path:'));
    const d = only(result, 'ETL_CFG_INVALID');
    expect(at(d)).toEqual([18, 7]);
    expect(d.message).toBe('`path` has no value');
  });

  it('names the known types of an unknown operator type at the type value', async () => {
    const result = await load(VALID.replace('      type: file\n      paths', '      type: fiel\n      paths'));
    const d = only(result, 'ETL_CFG_UNKNOWN_TYPE');
    expect(at(d)).toEqual([8, 13]);
    expect(d.message).toBe('unknown source type `fiel`; known: file, generator, stdin — did you mean `file`?');
    // Nothing else is said about a stage whose operator is unknown (no oneOf noise).
    expect(result.diagnostics).toHaveLength(1);
  });

  it('reports a missing environment variable at its scalar', async () => {
    const result = await load(VALID.replace('      path: out.jsonl', '      path: ${OUT_DIR}/out.jsonl'));
    const d = only(result, 'ETL_CFG_ENV');
    expect(at(d)).toEqual([18, 13]);
    expect(d.message).toBe('environment variable `OUT_DIR` is not set');
    expect(d.hint).toContain('${OUT_DIR:-value}');
    expect(result.diagnostics).toHaveLength(1);
  });

  it('suggests the stage an unknown input probably meant', async () => {
    const result = await load(VALID.replace('      inputs: [nginx]', '      inputs: [ngnix]'));
    const d = only(result, 'ETL_GRAPH_UNKNOWN_INPUT');
    expect(at(d)).toEqual([13, 16]);
    expect(d.message).toBe('input `ngnix` names no stage — did you mean `nginx`?');
  });

  it('lists the ports of a known stage when the port is unknown', async () => {
    const result = await load(VALID.replace('      inputs: [parsed]', '      inputs: [parsed, parsed.dead_leter]'));
    const d = only(result, 'ETL_GRAPH_UNKNOWN_INPUT');
    expect(at(d)).toEqual([17, 24]);
    expect(d.message).toBe('transform `parsed` has no port `dead_leter` — did you mean `parsed.dead_letter`?');
    expect(d.hint).toBe('its outputs: parsed, parsed.dead_letter');
  });

  it('points at the second of two stages with the same id', async () => {
    const result = await load(VALID.replace('  sinks:\n    out:', '  sinks:\n    nginx:'));
    const d = only(result, 'ETL_GRAPH_DUPLICATE_ID');
    expect(at(d)).toEqual([15, 5]);
    expect(d.message).toBe('duplicate stage id `nginx`: the source at line 7 already uses it');
  });

  it('shows a cycle as a path', async () => {
    const yaml = VALID.replace(
      '  sinks:',
      `    a:
      type: parse
      inputs: [b]
    b:
      type: parse
      inputs: [a]
  sinks:`,
    ).replace('      inputs: [parsed]', '      inputs: [parsed, a]');
    const result = await load(yaml);
    const d = only(result, 'ETL_GRAPH_CYCLE');
    expect(d.message).toBe('the stages form a cycle: a -> b -> a');
    // `a` reads `b`: that input closes the loop.
    expect(at(d)).toEqual([16, 16]);
  });

  it('explains a kind mismatch and how to fix it', async () => {
    const yaml = VALID.replace(
      '      inputs: [nginx]',
      '      inputs: [nginx]\n    geo:\n      type: geo\n      inputs: [nginx]',
    ).replace('      inputs: [parsed]', '      inputs: [parsed, geo]');
    const result = await load(yaml);
    const d = only(result, 'ETL_GRAPH_KIND_MISMATCH');
    expect(at(d)).toEqual([16, 16]);
    expect(d.message).toBe('stage `geo` takes access records but `nginx` sends raw lines');
    expect(d.hint).toBe('add a `parse` stage between them');
  });

  it('reports YAML syntax errors with their position', async () => {
    const result = await load(VALID.replace('      paths: [logs/*.log]', '      paths: [logs/*.log'));
    const d = result.diagnostics[0];
    expect(d?.code).toBe('ETL_CFG_YAML');
    expect(d?.severity).toBe('error');
    // The unclosed flow sequence is found where the next mapping entry starts.
    expect(at(d as never)).toEqual([10, 3]);
    expect(result.pipelines).toEqual([]);
  });

  it('reports a problem in the second document of a file at its line in the file', async () => {
    const second = VALID.replace('  name: web', '  name: api').replace(
      '      path: out.jsonl',
      '      path: out.jsonl\n      colour: red',
    );
    const result = await load(`${VALID}---\n${second}`);
    const d = only(result, 'ETL_CFG_UNKNOWN_KEY');
    expect(at(d)).toEqual([19 + 19, 7]);
    expect(result.pipelines.map((p) => p.name)).toEqual(['web']);
  });

  it('reports every problem of a file at once', async () => {
    const yaml = `apiVersion: etl/v2
kind: Pipeline
metadata:
  name: web
spec:
  settings:
    batch_max_records: 0
  sources:
    nginx:
      type: file
      pahts: [a.log]
    gen:
      type: generatr
  operators:
    parsed:
      type: parse
      inputs: [ngnix]
    geo:
      type: geo
      inputs: [nginx]
      min_prefix: 40
  sinks:
    out:
      type: file
      inputs: [parsed, geo]
      path: \${MISSING}
`;
    const result = await load(yaml);
    const summary = result.diagnostics.map((d) => `${d.line}:${d.column} ${d.code}`);
    expect(summary).toEqual([
      '1:13 ETL_CFG_INVALID', // apiVersion
      '7:24 ETL_CFG_INVALID', // batch_max_records >= 1
      '11:7 ETL_CFG_UNKNOWN_KEY', // pahts
      '13:13 ETL_CFG_UNKNOWN_TYPE', // generatr
      '17:16 ETL_GRAPH_UNKNOWN_INPUT', // ngnix
      '20:16 ETL_GRAPH_KIND_MISMATCH', // raw lines into geo
      '21:19 ETL_CFG_INVALID', // geo's own validate()
      '26:13 ETL_CFG_ENV', // MISSING
    ]);
  });

  it('formats diagnostics as file:line:col', async () => {
    const result = await load(VALID.replace('      inputs: [nginx]', '      inputs: [ngnix]'));
    expect(formatDiagnostic(result.diagnostics[0] as never)).toBe(
      'pipeline.yaml:13:16: error ETL_GRAPH_UNKNOWN_INPUT: input `ngnix` names no stage — did you mean `nginx`? (at spec.operators.parsed.inputs[0])\n  hint: stages: nginx, out',
    );
  });
});
