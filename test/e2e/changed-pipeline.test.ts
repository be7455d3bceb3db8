/**
 * A pipeline edited after a complete run: a renamed source used to read every line again (exit 0, no
 * word). Now the rerun refuses and says how to go on; `--rename` carries the position over, `--reset`
 * starts over on purpose.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeLogFile } from '../../operators/sources/generator/write-file.ts';
import { etl } from '../support/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-changed-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const LINES = 20_000;
const file = join(dir, 'p.yaml');
const output = join(dir, 'out.jsonl');

function write(sourceId: string): void {
  writeFileSync(
    file,
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: edited }
spec:
  settings: { data_dir: ${join(dir, '.etl')} }
  sources:
    ${sourceId}: { type: file, paths: [${join(dir, 'access.log')}] }
  sinks:
    out: { type: file, inputs: [${sourceId}], path: ${output} }
`,
  );
}

const lines = () => readFileSync(output, 'utf8').trim().split('\n').length;

describe('a pipeline changed since its last run', () => {
  it('refuses a renamed source, carries its position over with --rename, starts over with --reset', async () => {
    await writeLogFile(join(dir, 'access.log'), LINES, { seed: 3 });
    write('logs');
    const first = await etl(['apply', '--no-progress', file]);
    expect(first.code, first.stderr).toBe(0);
    expect(lines()).toBe(LINES);

    write('src');
    const refused = await etl(['apply', '--no-progress', file]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('holds state for source `logs`, which pipeline edited no longer has');
    expect(refused.stderr).toContain('--rename logs=src');
    expect(lines()).toBe(LINES);

    const renamed = await etl(['apply', '--no-progress', '--rename', 'logs=src', file]);
    expect(renamed.code, renamed.stderr).toBe(0);
    expect(renamed.stderr).toMatch(/records read\s+0\n/);
    // The sink reads the renamed source: a rename alone is no edit of it.
    expect(renamed.stderr).not.toContain('changed since checkpoint');
    expect(lines()).toBe(LINES);
    // The rename is recorded: the next run needs no flag.
    const again = await etl(['apply', '--no-progress', file]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/records read\s+0\n/);
    expect(again.stderr).not.toContain('changed since checkpoint');

    const reset = await etl(['apply', '--no-progress', '--reset', file]);
    expect(reset.code, reset.stderr).toBe(0);
    expect(reset.stderr).toContain('starting over (--reset)');
    expect(reset.stderr).toMatch(new RegExp(`records read\\s+${LINES.toLocaleString('en-US')} `));
    // The file sink starts its file anew without a checkpoint: every line once.
    expect(lines()).toBe(LINES);
  });

  it('says once what was edited ahead of what the sinks already hold: a stage added, a stage declared otherwise', async () => {
    const edited = join(dir, 'edited');
    const pipeline = join(edited, 'p.yaml');
    const log = join(edited, 'access.log');
    const stored = join(edited, 'out.jsonl');
    const writePipeline = (stages: string, sinkInput: string) =>
      writeFileSync(
        pipeline,
        `apiVersion: etl/v1
kind: Pipeline
metadata: { name: anonymised-later }
spec:
  settings: { data_dir: ${join(edited, '.etl')} }
  sources:
    logs: { type: file, paths: [${log}] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
${stages}  sinks:
    out: { type: file, inputs: [${sinkInput}], path: ${stored} }
`,
      );
    /** Runs the pipeline, which must succeed; what it said on stderr. */
    const apply = async (): Promise<string> => {
      const run = await etl(['apply', '--no-progress', pipeline]);
      expect(run.code, run.stderr).toBe(0);
      return run.stderr;
    };
    mkdirSync(edited);
    await writeLogFile(log, 500, { seed: 5 });
    writePipeline('', 'parsed');
    expect(await apply()).not.toContain('changed since checkpoint');

    // Anonymisation added after the addresses were stored in clear: nothing is read again, and the run says so.
    writePipeline('    anon: { type: anonymize, inputs: [parsed] }\n', 'anon');
    const changed = await apply();
    expect(changed).toMatch(/records read\s+0\n/);
    expect(changed).toContain('pipeline anonymised-later changed since checkpoint');
    expect(changed).toContain('transform `anon` (anonymize) added');
    expect(changed).toContain('sink `out` (file) declared otherwise');
    expect(changed).toContain('what the sinks stored before stays as it was made');
    expect(changed).toContain('etl apply --reset');
    // Told once.
    expect(await apply()).not.toContain('changed since checkpoint');

    // An option of a stage, in another run: said too; the same options written in another order are no edit.
    writePipeline('    anon: { type: anonymize, inputs: [parsed], ip: { mode: drop } }\n', 'anon');
    const option = await apply();
    expect(option).toContain('transform `anon` (anonymize) declared otherwise');
    expect(option).not.toContain('sink `out`');
    writePipeline('    anon: { ip: { mode: drop }, inputs: [parsed], type: anonymize }\n', 'anon');
    expect(await apply()).not.toContain('changed since checkpoint');
  });
});
