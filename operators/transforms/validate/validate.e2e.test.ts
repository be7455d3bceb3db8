/** Through YAML and the CLI, as a user runs it: parse → validate → files, with a quality threshold. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { etl } from '../../../test/support/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-validate-e2e-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const readJsonl = (path: string) =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

const LINES = [
  '8.8.8.8 - - [10/Oct/2000:13:55:36 -0700] "GET /index.html HTTP/1.1" 200 2326 "https://example.com/" "curl/8"',
  '8.8.4.4 - - [10/Oct/2000:13:55:37 -0700] "GET /a%zz HTTP/1.1" 200 12 "-" "curl/8"',
  '999.1.1.1 - - [10/Oct/2000:13:55:38 -0700] "GET /pot HTTP/1.1" 418 0 "-" "curl/8"',
  '1.1.1.1 - - [10/Oct/2000:13:55:39 -0700] "BREW /pot HTTP/1.1" 200 0 "-" "curl/8"',
];

function pipeline(name: string, minValidRatio: number): string {
  return `apiVersion: etl/v1
kind: Pipeline
metadata: { name: ${name} }
spec:
  sources:
    logs: { type: file, paths: ['access.log'] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
    checked:
      type: validate
      inputs: [parsed]
      min_valid_ratio: ${minValidRatio}
      rules:
        - { name: client_ip, ip: { field: client_ip } }
        - { name: path, action: flag, path: { field: path } }
        - { name: method, action: drop, method: { field: method } }
        - name: teapot
          action: flag
          condition: 'record.status != 418'
  sinks:
    out: { type: file, inputs: [checked], path: ${name}/out.jsonl, format: jsonl }
    rejects: { type: file, inputs: [checked.dead_letter], path: ${name}/rejects.jsonl, format: jsonl }
`;
}

describe('validate end to end', () => {
  writeFileSync(join(dir, 'access.log'), `${LINES.join('\n')}\n`);

  it('dead-letters, drops and flags, and reports the valid share in the summary', async () => {
    writeFileSync(join(dir, 'ok.yaml'), pipeline('ok', 0.25));
    const result = await etl(['apply', '--no-progress', 'ok.yaml'], { cwd: dir });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/checked +25% valid \(1 of 4 records\); min_valid_ratio 0\.25 \(25%\)/);
    expect(result.stderr).toMatch(/rule client_ip \(dead_letter\): 1 failed/);
    expect(result.stderr).toMatch(/rule method \(drop\): 1 failed/);
    expect(result.stderr).toMatch(/outcome +succeeded/);
    const out = readJsonl(join(dir, 'ok', 'out.jsonl'));
    expect(out.map((r) => [r.client_ip, r.validation_failed, r.validation_rules])).toEqual([
      ['8.8.8.8', false, []],
      ['8.8.4.4', true, ['path']],
    ]);
    const rejects = readJsonl(join(dir, 'ok', 'rejects.jsonl'));
    expect(rejects.map((r) => r.reason)).toEqual([
      'rule client_ip: `client_ip` "999.1.1.1" is not an IP address; rule teapot: condition is false',
    ]);
  });

  it('fails the run with a clear message below min_valid_ratio, after delivering everything', async () => {
    writeFileSync(join(dir, 'strict.yaml'), pipeline('strict', 0.995));
    const result = await etl(['apply', '--no-progress', 'strict.yaml'], { cwd: dir });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      'outcome          failed: stage checked: 25% of the records are valid, below min_valid_ratio 0.995',
    );
    expect(readJsonl(join(dir, 'strict', 'out.jsonl'))).toHaveLength(2);
    expect(readJsonl(join(dir, 'strict', 'rejects.jsonl'))).toHaveLength(1);
    // The run was checkpointed: a rerun has nothing left to read, and checks nothing.
    const again = await etl(['apply', '--no-progress', 'strict.yaml'], { cwd: dir });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/checked +no record checked/);
  });
});
