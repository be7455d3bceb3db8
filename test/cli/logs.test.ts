/** `etl apply --log-format json|pretty --log-level …`: what a real run writes on standard error. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { etl } from '../support/cli.ts';

let file = '';
beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), 'etl-logs-'));
  writeFileSync(
    join(dir, 'access.log'),
    '192.0.2.1 - - [26/Nov/2026:00:00:01 +0000] "GET / HTTP/1.1" 200 512 "-" "curl/8.5.0"\nnot a log line\n',
  );
  file = join(dir, 'logs.yaml');
  writeFileSync(
    file,
    `apiVersion: etl/v1
kind: Pipeline
metadata: { name: logged }
spec:
  settings: { data_dir: ${join(dir, '.etl')} }
  sources:
    logs: { type: file, paths: ["${join(dir, 'access.log')}"] }
  operators:
    parsed: { type: parse, inputs: [logs] }
  sinks:
    out: { type: file, inputs: [parsed], path: ${join(dir, 'out.jsonl')} }
`,
  );
});

/** The log events among what standard error holds (the run's summary follows them, for people). */
function jsonEvents(stderr: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

it('--log-format json: one JSON object per event, with stable field names', async () => {
  const result = await etl(['apply', '--no-progress', '--reset', '--log-format', 'json', '--log-level', 'info', file]);
  expect(result.code).toBe(0);
  const events = jsonEvents(result.stderr);
  const detected = events.find((e) => e.msg === 'parse: detected format');
  expect(detected).toMatchObject({ level: 'info', pipeline: 'logged', stage: 'parsed', format: 'combined' });
  expect(new Date(String(detected?.time)).toISOString()).toBe(detected?.time);
  const unread = events.find((e) => String(e.msg).includes('no stage reads parsed.dead_letter'));
  expect(unread).toMatchObject({ level: 'warn', pipeline: 'logged', stage: 'parsed' });
});

it('--log-format pretty (the default): one readable line per event; --log-level warn drops info', async () => {
  const result = await etl(['apply', '--no-progress', '--reset', '--log-level', 'warn', file]);
  expect(result.code).toBe(0);
  expect(result.stderr).toMatch(
    /^\[\d{4}-\d\d-\d\dT[\d:.]+Z\] WARN: \[logged\/parsed\] stage parsed rejected records and no stage reads parsed\.dead_letter.* \{"reason":".+"\}$/m,
  );
  expect(result.stderr).not.toContain('INFO');
  expect(jsonEvents(result.stderr)).toEqual([]);
});
