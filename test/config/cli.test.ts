/** `etl validate` and `etl schema` as the CLI calls them. */
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runSchema } from '../../engine/cli/commands/schema.ts';
import { runValidate, summary } from '../../engine/cli/commands/validate.ts';
import { testRegistry } from './operators.ts';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

async function validate(paths: string[], format: 'text' | 'json' = 'text') {
  const out = capture();
  const err = capture();
  const code = await runValidate(paths, {
    format,
    out: out.stream,
    err: err.stream,
    registry: testRegistry,
    env: {},
    cwd: FIXTURES,
  });
  return { code, out: out.text(), err: err.text() };
}

describe('etl validate', () => {
  it('says how many pipelines in how many files are valid', async () => {
    const { code, out, err } = await validate(['valid/two.yaml']);
    expect(code).toBe(0);
    expect(out).toBe('2 pipelines in 1 file: valid\n');
    expect(err).toBe('');
  });

  it('passes with warnings alone and prints them', async () => {
    const { code, out } = await validate(['warning.yaml']);
    expect(code).toBe(0);
    expect(out).toBe(
      'warning.yaml:7:5: warning ETL_GRAPH_UNREAD_OUTPUT: nothing reads the output of source `idle` (at spec.sources.idle)\n' +
        '  hint: add `idle` to the `inputs` of an operator or sink, or remove the stage\n' +
        '1 pipeline in 1 file: valid, 1 warning\n',
    );
  });

  it('fails with every diagnostic and a count of errors and warnings', async () => {
    const { code, out } = await validate(['broken.yaml']);
    expect(code).toBe(1);
    const lines = out.trimEnd().split('\n');
    expect(
      lines.filter((l) => /^broken\.yaml:\d+:\d+: /.test(l)).map((l) => l.split(': ').slice(0, 2).join(': ')),
    ).toEqual([
      'broken.yaml:6:29: error ETL_CFG_UNKNOWN_KEY',
      'broken.yaml:7:5: warning ETL_GRAPH_UNREAD_OUTPUT',
      'broken.yaml:9:66: error ETL_CFG_INVALID',
    ]);
    expect(lines.at(-1)).toBe('2 errors, 1 warning');
  });

  it('prints JSON for machines', async () => {
    const { code, out } = await validate(['valid/two.yaml', 'broken.yaml'], 'json');
    expect(code).toBe(1);
    const report = JSON.parse(out) as { valid: boolean; pipelines: string[]; diagnostics: { code: string }[] };
    expect(report.valid).toBe(false);
    expect(report.pipelines).toEqual(['web-access', 'generated']);
    expect(report.diagnostics.map((d) => d.code)).toEqual([
      'ETL_CFG_UNKNOWN_KEY',
      'ETL_GRAPH_UNREAD_OUTPUT',
      'ETL_CFG_INVALID',
    ]);
  });

  it('fails on a missing file', async () => {
    const { code, out } = await validate(['missing.yaml']);
    expect(code).toBe(1);
    expect(out).toBe('missing.yaml: error ETL_CFG_NOT_FOUND: no such file or directory: missing.yaml\n1 error\n');
  });

  it('counts in the summary', () => {
    const d = (severity: 'error' | 'warning') =>
      ({ file: 'f', line: 1, column: 1, path: '', code: 'ETL_CFG_SCHEMA', severity, message: 'm' }) as const;
    expect(summary(3, 2, [])).toBe('3 pipelines in 2 files: valid');
    expect(summary(0, 1, [d('error'), d('error'), d('error'), d('warning')])).toBe('3 errors, 1 warning');
    expect(summary(1, 1, [d('warning'), d('warning')])).toBe('1 pipeline in 1 file: valid, 2 warnings');
  });
});

describe('etl schema', () => {
  it('prints the composed pipeline schema', async () => {
    const out = capture();
    expect(await runSchema({ out: out.stream, registry: testRegistry })).toBe(0);
    const schema = JSON.parse(out.text()) as { $id: string; $defs: Record<string, unknown> };
    expect(schema.$id).toBe('https://etl.dev/schemas/pipeline.schema.json');
    expect(Object.keys(schema.$defs)).toContain('transform-parse');
  });
});
