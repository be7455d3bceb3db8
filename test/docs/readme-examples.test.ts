/**
 * Every YAML example in every README is a test input: it must validate, so the docs cannot drift from the
 * schemas again. An example may be a whole pipeline, a part of `spec` (`sources:`, `sinks:` …), stages of
 * the operator the README documents, or some of that operator's options; the parts are completed with
 * stand-in stages and checked with the real loader. A block that is not pipeline configuration (a compose
 * file, say) says so with `# not a pipeline` on its first line.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isMap, isScalar, parseDocument, stringify } from 'yaml';
import { loadPipelinesFromString } from '../../engine/config/load.ts';
import { SECTION_SYNONYMS, STAGE_SECTIONS } from '../../engine/schema/envelope.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function readmes(dir = ROOT): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...readmes(path));
    else if (entry.name === 'README.md') out.push(path);
  }
  return out.sort();
}

interface Example {
  readonly readme: string;
  readonly line: number;
  readonly text: string;
}

function examples(readme: string): Example[] {
  const lines = readFileSync(readme, 'utf8').split('\n');
  const out: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^```ya?ml\s*$/.test(lines[i] as string)) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !(lines[end] as string).startsWith('```')) end++;
    const text = lines.slice(start, end).join('\n');
    if (!/^#\s*not a pipeline/.test(text)) out.push({ readme: relative(ROOT, readme), line: start, text });
    i = end;
  }
  return out;
}

/** The operator a README in operators/<folder>/<type>/ documents. */
function operatorOf(readme: string): { section: (typeof STAGE_SECTIONS)[number]; type: string } | undefined {
  const match = /^operators\/(sources|transforms|sinks)\/([^/]+)\/README\.md$/.exec(readme);
  if (!match) return undefined;
  const section = STAGE_SECTIONS.find((s) => s.folder === match[1]);
  return section ? { section, type: match[2] as string } : undefined;
}

type Stages = Record<string, Record<string, unknown>>;
type Spec = Partial<Record<'sources' | 'operators' | 'sinks' | 'settings' | 'telemetry', unknown>>;

// The sections other tools name differently count too: the loader then says which section is meant.
const SPEC_KEYS = new Set(['sources', 'operators', 'sinks', 'settings', 'telemetry', ...Object.keys(SECTION_SYNONYMS)]);

/**
 * The pipeline documents an example stands for. Options written as alternatives (`format:` twice) are one
 * document each.
 */
function documentsFor(example: Example): string[] {
  const doc = parseDocument(example.text, { uniqueKeys: false });
  if (doc.errors.length > 0) return [example.text]; // the loader reports the syntax error at its place
  if (!isMap(doc.contents)) throw new Error('a YAML example must be a map');
  const pairs = doc.contents.items.map((p) => [isScalar(p.key) ? String(p.key.value) : '', p.value] as const);
  const value = doc.toJS() as Record<string, unknown>;
  if ('apiVersion' in value) return [example.text];
  if (pairs.every(([key]) => SPEC_KEYS.has(key))) return [pipelineFrom(value as Spec)];
  const operator = operatorOf(example.readme);
  if (!operator) throw new Error('a part of a pipeline outside an operator README must start at `sources:`, …');
  if (Object.values(value).every((v) => v !== null && typeof v === 'object' && 'type' in v)) {
    return [pipelineFrom({ [operator.section.key]: value })];
  }
  // Options of the README's operator; a key given twice is a list of alternatives.
  const keys = pairs.map(([key]) => key);
  const repeated = new Set(keys.filter((k, i) => keys.indexOf(k) !== i));
  const shared = Object.fromEntries(
    pairs.filter(([key]) => !repeated.has(key)).map(([key, node]) => [key, toJs(node)]),
  );
  const variants =
    repeated.size === 0 ? [{}] : pairs.filter(([k]) => repeated.has(k)).map(([k, n]) => ({ [k]: toJs(n) }));
  return variants.map((variant) => {
    const stage = { type: operator.type, ...shared, ...variant };
    return pipelineFrom({ [operator.section.key]: { example: stage } });
  });
}

/** A YAML node as plain data. */
function toJs(node: unknown): unknown {
  return parseDocument(stringify(node)).toJS();
}

/**
 * A whole pipeline around a part of one: a generator source when it has none, a `parse` stage for every
 * input it names but does not declare, a blackhole for the outputs of its last stages when it has no sink.
 */
function pipelineFrom(part: Spec): string {
  const sources = structuredClone(part.sources ?? {}) as Stages;
  const operators = structuredClone(part.operators ?? {}) as Stages;
  const sinks = structuredClone(part.sinks ?? {}) as Stages;
  const spec: Spec = { ...structuredClone(part), sources, operators, sinks };
  const declared = new Set([...Object.keys(sources), ...Object.keys(operators), ...Object.keys(sinks)]);
  if (Object.keys(sources).length === 0) sources.readme_source = { type: 'generator', count: 1 };
  const firstSource = Object.keys(sources)[0] as string;
  for (const stage of [...Object.values(operators), ...Object.values(sinks)]) {
    for (const input of (stage.inputs as string[] | undefined) ?? []) {
      const id = input.split('.')[0] as string;
      if (!declared.has(id)) {
        operators[id] = { type: 'parse', inputs: [firstSource] };
        declared.add(id);
      }
    }
  }
  if (Object.keys(sinks).length === 0) {
    sinks.readme_sink = { type: 'blackhole', inputs: [...Object.keys(sources), ...Object.keys(operators)] };
  }
  for (const operator of Object.values(operators)) operator.inputs ??= [firstSource];
  for (const sink of Object.values(sinks)) sink.inputs ??= [firstSource];
  return stringify({ apiVersion: 'etl/v1', kind: 'Pipeline', metadata: { name: 'readme' }, spec });
}

const all = readmes().flatMap(examples);

describe('YAML examples in the READMEs', () => {
  it('are found', () => {
    expect(all.length).toBeGreaterThan(10);
  });

  it.each(all.map((e) => [`${e.readme}:${e.line}`, e] as const))('%s validates', async (_name, example) => {
    for (const document of documentsFor(example)) {
      const { diagnostics } = await loadPipelinesFromString(document, example.readme, {
        env: {
          DATABASE_URL: 'postgres://etl@127.0.0.1:5432/logs',
          ABUSEIPDB_KEY: 'readme-example-key',
          ANONYMIZE_KEY: 'readme-example-key-0123456789',
          SLACK_WEBHOOK_URL: 'https://hooks.slack.com/services/T000/B000/XXXX',
          PAGERDUTY_ROUTING_KEY: 'readme-example-routing-key',
          SMTP_URL: 'smtp://alerts:password@mail.example.com:587',
          ELASTICSEARCH_URL: 'https://etl:password@es.example.com:9200',
          INGEST_KEY: 'readme-example-ingest-key',
          SFTP_PRIVATE_KEY: '-----BEGIN OPENSSH PRIVATE KEY-----\nreadme-example\n-----END OPENSSH PRIVATE KEY-----\n',
          SFTP_KEY_PASSPHRASE: 'readme-example-passphrase',
          SFTP_PASSWORD: 'readme-example-password',
        },
      });
      const errors = diagnostics.filter((d) => d.severity === 'error');
      expect(
        errors.map((d) => `${d.message}${d.hint ? ` (${d.hint})` : ''}`),
        document,
      ).toEqual([]);
    }
  });
});
