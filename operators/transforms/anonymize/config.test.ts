/**
 * anonymize as `etl validate` and `etl graph` see it: misspelt fields at their line and column, the warning for
 * dead letters that go around it, the records schema on its ports, and the key kept out of what is printed.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPipelinesFromString } from '../../../engine/config/load.ts';
import { etl } from '../../../test/support/cli.ts';

const KEY = 'config-test-key-2c4e6a8b0d1f3e5a';
// biome-ignore lint/suspicious/noTemplateCurlyInString: pipeline text, interpolated by the loader
const SECRET_REF = '${secret:ANON_KEY}';
// biome-ignore lint/suspicious/noTemplateCurlyInString: pipeline text, interpolated by the loader
const PLAIN_REF = '${ANON_KEY}';
// biome-ignore lint/suspicious/noTemplateCurlyInString: the syntax as the message shows it
const SECRET_SYNTAX = '${secret:…}';

const pipeline = (operators: string, sinks: string) => `apiVersion: etl/v1
kind: Pipeline
metadata: { name: gdpr }
spec:
  sources:
    logs: { type: file, paths: [logs/*.log] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
${operators}
  sinks:
${sinks}
`;

const ANON = `    anon:
      type: anonymize
      inputs: [parsed, parsed.dead_letter]
      ip: { mode: pseudonymize, fields: [client_ip] }
      key: \${secret:ANON_KEY}
      key_id: k1`;

const load = (yaml: string) => loadPipelinesFromString(yaml, 'gdpr.yaml', { env: { ANON_KEY: KEY } });

describe('anonymize in a pipeline document', () => {
  it('reports a misspelt field at its line and column, with the field meant', async () => {
    const { diagnostics } = await load(
      pipeline(
        ANON.replace('fields: [client_ip]', 'fields: [client_ipp]'),
        '    out: { type: blackhole, inputs: [anon] }',
      ),
    );
    expect(diagnostics.map((d) => `${d.line}:${d.column} ${d.code} ${d.message}`)).toEqual([
      '12:42 ETL_GRAPH_UNKNOWN_FIELD unknown field `client_ipp` — did you mean `client_ip`?',
    ]);
  });

  it('declares the access records, changed, on default and dead letters on dead_letter', async () => {
    const { pipelines, diagnostics } = await load(
      pipeline(
        ANON,
        '    out: { type: blackhole, inputs: [anon] }\n    rejects: { type: blackhole, inputs: [anon.dead_letter] }',
      ),
    );
    expect(diagnostics).toEqual([]);
    const stage = pipelines[0]?.stages.find((s) => s.id === 'anon');
    const records = stage?.outputSchemas?.default;
    expect(records?.properties?.client_ip).toMatchObject({ type: ['string', 'null'] });
    expect(records?.properties).not.toHaveProperty('raw');
    expect(records?.required).toContain('status');
    expect(stage?.outputSchemas?.dead_letter?.properties).toHaveProperty('raw');
  });

  it('warns when the key is not read from a secret variable, where it is written', async () => {
    const sinks =
      '    out: { type: blackhole, inputs: [anon] }\n    rejects: { type: blackhole, inputs: [anon.dead_letter] }';
    const literal = await load(pipeline(ANON.replace(SECRET_REF, KEY), sinks));
    expect(literal.diagnostics.map((d) => [d.line, d.column, d.severity, d.code])).toEqual([
      [13, 12, 'warning', 'ETL_CFG_SECRET'],
    ]);
    expect(literal.diagnostics[0]?.message).toBe(
      `\`key\` is a secret but is not read from a \`${SECRET_SYNTAX}\` variable`,
    );
    const plain = await load(pipeline(ANON.replace(SECRET_REF, PLAIN_REF), sinks));
    expect(plain.diagnostics.map((d) => d.code)).toEqual(['ETL_CFG_SECRET']);
    expect((await load(pipeline(ANON, sinks))).diagnostics).toEqual([]);
  });

  it('warns when dead letters upstream of it reach a sink around it', async () => {
    const around = pipeline(
      ANON.replace('inputs: [parsed, parsed.dead_letter]', 'inputs: [parsed]'),
      '    out: { type: blackhole, inputs: [anon] }\n    rejects: { type: blackhole, inputs: [parsed.dead_letter] }',
    );
    const { diagnostics, pipelines } = await load(around);
    expect(diagnostics.map((d) => [d.line, d.column, d.severity, d.code])).toEqual([
      [17, 42, 'warning', 'ETL_GRAPH_PERSONAL_DATA'],
    ]);
    expect(diagnostics[0]?.message).toBe(
      '`rejects` reads `parsed.dead_letter`, whose dead letters hold the original lines, around `anon`',
    );
    expect(pipelines).toHaveLength(1);
    // Through anonymize, or from a stage downstream of it, there is nothing to say.
    const through = pipeline(
      ANON,
      '    out: { type: blackhole, inputs: [anon] }\n    rejects: { type: blackhole, inputs: [anon.dead_letter, out.dead_letter] }',
    );
    expect((await load(through)).diagnostics).toEqual([]);
  });

  it('warns for every port upstream of it that reaches a sink around it, at the input where it leaves', async () => {
    // threat_intel's `threats` port to a file, the parsed records fanned out to a second sink, and `threats`
    // again through a transform before its sink: each keeps the client address anonymize removes.
    const around = pipeline(
      `    intel: { type: threat_intel, inputs: [parsed] }
    deduped: { type: dedupe, inputs: [intel.threats], fields: [client_ip], window_seconds: 60 }
${ANON.replace('inputs: [parsed, parsed.dead_letter]', 'inputs: [intel, parsed.dead_letter]')}`,
      `    out: { type: blackhole, inputs: [anon, anon.dead_letter] }
    alerts: { type: file, inputs: [intel.threats], path: threats.jsonl }
    copy: { type: blackhole, inputs: [parsed] }
    later: { type: blackhole, inputs: [deduped] }`,
    );
    const { diagnostics, pipelines } = await load(around);
    expect(diagnostics.map((d) => [d.line, d.column, d.severity, d.code, d.message])).toEqual([
      [
        10,
        39,
        'warning',
        'ETL_GRAPH_PERSONAL_DATA',
        '`deduped` reads `intel.threats`, whose records still hold the personal data, reaching sink `later`, around `anon`',
      ],
      [
        19,
        36,
        'warning',
        'ETL_GRAPH_PERSONAL_DATA',
        '`alerts` reads `intel.threats`, whose records still hold the personal data, around `anon`',
      ],
      [
        20,
        39,
        'warning',
        'ETL_GRAPH_PERSONAL_DATA',
        '`copy` reads `parsed`, whose records still hold the personal data, around `anon`',
      ],
    ]);
    expect(pipelines).toHaveLength(1);
    expect(diagnostics[1]?.hint).toBe(
      'read `intel.threats` through `anon` (or a stage of its own of type `anonymize`) before it reaches a sink',
    );
    // The same ports read through anonymize stages reach their sinks with nothing to say.
    const through = pipeline(
      `    intel: { type: threat_intel, inputs: [parsed] }
${ANON.replace('inputs: [parsed, parsed.dead_letter]', 'inputs: [intel, parsed.dead_letter]')}
${ANON.replace('anon:', 'anon_threats:').replace('inputs: [parsed, parsed.dead_letter]', 'inputs: [intel.threats]')}`,
      `    out: { type: blackhole, inputs: [anon, anon.dead_letter] }
    alerts: { type: file, inputs: [anon_threats], path: threats.jsonl }
    rejects: { type: blackhole, inputs: [anon_threats.dead_letter] }`,
    );
    expect((await load(through)).diagnostics).toEqual([]);
  });

  describe('on the command line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'etl-anonymize-config-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it("anonymizes threat_intel's matched range as an address, and warns for its threats port around it", async () => {
      // The newcomer's pipeline: a listed client; its threats go to a file around anonymize, its records through it.
      const at = join(dir, 'intel');
      mkdirSync(join(at, 'logs'), { recursive: true });
      writeFileSync(
        join(at, 'logs', 'a.log'),
        '171.132.50.94 - - [05/Dec/2026:10:00:00 +0000] "GET /x HTTP/1.1" 200 5 "-" "curl/8"\n' +
          '2001:db8::7 - - [05/Dec/2026:10:00:01 +0000] "GET /y HTTP/1.1" 200 5 "-" "curl/8"\n',
      );
      writeFileSync(join(at, 'blocked.txt'), '171.132.50.94\n2001:db8::/32\n');
      const yaml = pipeline(
        `    intel:
      type: threat_intel
      inputs: [parsed]
      lists: [{ name: blocked, path: blocked.txt }]
      signatures: { builtin: false }
    anon: { type: anonymize, inputs: [intel] }`,
        `    out: { type: file, inputs: [anon], path: out.jsonl }
    alerts: { type: file, inputs: [intel.threats], path: threats.jsonl }`,
      );
      writeFileSync(join(at, 'p.yaml'), yaml);
      const checked = await etl(['validate', 'p.yaml'], { cwd: at });
      expect(checked.code, checked.stderr).toBe(0);
      expect(checked.stdout + checked.stderr).toContain(
        '`alerts` reads `intel.threats`, whose records still hold the personal data, around `anon`',
      );
      const run = await etl(['apply', '--no-progress', 'p.yaml'], { cwd: at });
      expect(run.code, run.stderr).toBe(0);
      const out = readFileSync(join(at, 'out.jsonl'), 'utf8');
      const records = out
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(records.map((r) => [r.client_ip, r.threat_lists, r.threat_range])).toEqual([
        ['171.132.50.0', 'blocked', '171.132.50.0/24'],
        ['2001:db8::', 'blocked', '2001:db8::/32'],
      ]);
      expect(out).not.toContain('171.132.50.94');
    });

    it('prints the key in neither `etl graph`, `etl validate` nor a run, and stores it nowhere', async () => {
      writeFileSync(
        join(dir, 'p.yaml'),
        pipeline(
          ANON,
          '    out: { type: blackhole, inputs: [anon] }\n    rejects: { type: blackhole, inputs: [anon.dead_letter] }',
        ),
      );
      const env = { ANON_KEY: KEY };
      for (const args of [
        ['validate', 'p.yaml'],
        ['graph', 'p.yaml'],
        ['graph', '--fields', 'p.yaml'],
      ]) {
        const result = await etl(args, { cwd: dir, env });
        expect(result.code, result.stderr).toBe(0);
        expect(result.stdout + result.stderr).not.toContain(KEY);
      }
      // A run at debug level: the key is in no log line, no output and no file of the state directory.
      mkdirSync(join(dir, 'logs'), { recursive: true });
      writeFileSync(
        join(dir, 'logs', 'a.log'),
        '192.0.2.7 - bob [10/Oct/2025:13:55:36 +0200] "GET /?token=abc HTTP/1.1" 200 1 "-" "curl/8"\nbroken 192.0.2.8\n',
      );
      writeFileSync(
        join(dir, 'run.yaml'),
        pipeline(
          ANON,
          '    out: { type: file, inputs: [anon], path: out.jsonl }\n    rejects: { type: file, inputs: [anon.dead_letter], path: rejects.jsonl }',
        ),
      );
      const run = await etl(['apply', '--no-progress', 'run.yaml'], {
        cwd: dir,
        env: { ...env, ETL_LOG_LEVEL: 'debug' },
      });
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout + run.stderr).not.toContain(KEY);
      const files = readdirSync(dir, { recursive: true, withFileTypes: true }).filter((f) => f.isFile());
      expect(files.map((f) => f.name)).toEqual(expect.arrayContaining(['out.jsonl', 'rejects.jsonl']));
      for (const file of files)
        expect(readFileSync(join(file.parentPath, file.name)).includes(KEY), file.name).toBe(false);
      expect(readFileSync(join(dir, 'out.jsonl'), 'utf8')).toContain('"client_ip":"k1:');
      // A refused key is quoted masked.
      const short = await etl(['validate', 'p.yaml'], { cwd: dir, env: { ANON_KEY: 'short' } });
      expect(short.code).not.toBe(0);
      expect(short.stdout + short.stderr).toMatch(/key/);
      expect(short.stdout + short.stderr).not.toContain('"short"');
    });
  });
});
