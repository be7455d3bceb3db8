/** Through YAML and the CLI, as a user runs it: a directory of mixed logs → parse (auto) → files. */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { etl } from '../../../test/support/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-parse-e2e-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const readJsonl = (path: string) =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('parse end to end', () => {
  it('parses a mixed directory with format auto and dead-letters the rest with file and line', async () => {
    cpSync(fileURLToPath(new URL('./testdata/mixed/', import.meta.url)), join(dir, 'logs'), { recursive: true });
    const good = '127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1';
    writeFileSync(join(dir, 'logs', 'broken.log'), `${good}\nnot a log line\n`);
    writeFileSync(
      join(dir, 'pipeline.yaml'),
      `apiVersion: etl/v1
kind: Pipeline
metadata: { name: parse-e2e }
spec:
  sources:
    logs: { type: file, paths: ['logs/*.log'] }
  operators:
    parsed: { type: parse, inputs: [logs], format: auto }
  sinks:
    out: { type: file, inputs: [parsed], path: out/parsed.jsonl, format: jsonl }
    rejects: { type: file, inputs: [parsed.dead_letter], path: out/rejects.jsonl, format: jsonl }
`,
    );
    const result = await etl(['apply', '--no-progress', 'pipeline.yaml'], { cwd: dir, env: { ETL_LOG_LEVEL: 'info' } });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/parse: detected format .*nginx-json\.log.*format=json/);
    expect(result.stderr).toMatch(
      /parse: detected format .*nginx-request-time\.log.*format=nginx_combined_request_time/,
    );

    const parsed = readJsonl(join(dir, 'out', 'parsed.jsonl'));
    expect(parsed).toHaveLength(11);
    expect(parsed.filter((r) => r.request_time_ms !== null).map((r) => r.request_time_ms)).toEqual(
      expect.arrayContaining([2, 215, 1, 4, 120, 0]),
    );
    const rejects = readJsonl(join(dir, 'out', 'rejects.jsonl'));
    expect(rejects).toHaveLength(1);
    expect(rejects[0]).toMatchObject({
      stage: 'parsed',
      raw: 'not a log line',
      origin: { file: expect.stringMatching(/broken\.log$/), line: 2, offset: good.length + 1 },
    });
    expect(rejects[0]?.reason).toMatch(/^no candidate format fits; common: /);

    const invalid = join(dir, 'invalid.yaml');
    writeFileSync(
      invalid,
      readFileSync(join(dir, 'pipeline.yaml'), 'utf8').replace(
        'format: auto',
        "format: { nginx: '$remote_addr $stauts' }",
      ),
    );
    const validation = await etl(['validate', 'invalid.yaml'], { cwd: dir });
    expect(validation.code).not.toBe(0);
    expect(validation.stdout + validation.stderr).toMatch(
      /invalid\.yaml:8:\d+: error ETL_CFG_INVALID: unknown variable \$stauts at column 14/,
    );
  });
});
