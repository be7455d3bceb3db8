/**
 * The detection corpus (testdata/corpus/): real log lines from public projects' test fixtures, each file
 * with a `<name>.expected.json` naming the format `auto` must detect and, per line, the port it must
 * leave on and hand-checked field values. Used by corpus.test.ts (every expectation must hold) and by
 * bench/parse-corpus.ts (the accuracy table of the README).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import type { ParseOptions } from './schema.ts';
import { createParse, rawRecords, testContext } from './test-support.ts';

const DIR = new URL('./testdata/corpus/', import.meta.url);

/** The corpus runs as a deployment behind private-network proxies would: these ranges are trusted. */
export const CORPUS_TRUSTED_PROXIES = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '127.0.0.0/8', '::1/128'];

export interface ExpectedLine {
  readonly port: 'default' | 'error_log' | 'dead_letter';
  readonly fields?: Readonly<Record<string, unknown>>;
}

export interface Expectation {
  readonly source: { readonly repo: string; readonly path: string; readonly licence: string };
  /** The label `format: auto` must log for the file. */
  readonly format: string;
  readonly lines: readonly ExpectedLine[];
}

export interface LineResult {
  readonly line: number;
  readonly expected: ExpectedLine;
  readonly port: string;
  readonly record: EtlRecord | undefined;
  readonly fieldsChecked: number;
  readonly fieldsRight: number;
  /** `field: got … expected …` for each wrong field. */
  readonly mismatches: readonly string[];
}

export interface FileResult {
  readonly name: string;
  readonly expectation: Expectation;
  readonly detected: string | undefined;
  readonly lines: readonly LineResult[];
}

export function corpusFiles(): string[] {
  return readdirSync(DIR)
    .filter((f) => f.endsWith('.log'))
    .sort();
}

/** The data lines of a corpus file: its `# ` header (source and licence) is not log text. */
export function corpusLines(name: string): string[] {
  return readFileSync(new URL(name, DIR), 'utf8')
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('# '));
}

export function expectation(name: string): Expectation {
  return JSON.parse(readFileSync(new URL(name.replace(/\.log$/, '.expected.json'), DIR), 'utf8')) as Expectation;
}

/**
 * Parses one corpus file with `format: auto` as a pipeline would, and compares with its expectation
 * (less the fields in `ignore`, to measure a version of the parser that lacks them).
 */
export function runCorpusFile(
  name: string,
  overrides: Partial<ParseOptions> = {},
  ignore: ReadonlySet<string> = new Set(),
): FileResult {
  const expected = expectation(name);
  const lines = corpusLines(name);
  const ctx = testContext();
  const parse = createParse({ trusted_proxies: CORPUS_TRUSTED_PROXIES, ...overrides }, ctx);
  const ports = parse.process(rawRecords(`${lines.join('\n')}\n`, name));
  const byLine = new Map<number, { port: string; record: EtlRecord }>();
  for (const [port, records] of Object.entries(ports)) {
    for (const record of records) byLine.set(record[ORIGIN]?.line as number, { port, record });
  }
  const decisions = ctx.logs.filter((l) => l.message.startsWith('parse: detected format'));
  const detected = decisions[decisions.length - 1]?.fields?.format as string | undefined;
  const results = lines.map((_, i): LineResult => {
    const want = expected.lines[i] ?? { port: 'default' };
    const got = byLine.get(i + 1);
    const port = got?.port ?? 'missing';
    const mismatches: string[] = [];
    let right = 0;
    const fields = Object.entries(want.fields ?? {}).filter(([field]) => !ignore.has(field));
    for (const [field, value] of fields) {
      const actual = got !== undefined && port === want.port ? got.record[field] : undefined;
      if (isDeepStrictEqual(actual, value)) right++;
      else mismatches.push(`${field}: got ${JSON.stringify(actual)}, expected ${JSON.stringify(value)}`);
    }
    if (port !== want.port) mismatches.unshift(`port: got ${port}, expected ${want.port}`);
    return {
      line: i + 1,
      expected: want,
      port,
      record: got?.record,
      fieldsChecked: fields.length,
      fieldsRight: right,
      mismatches,
    };
  });
  return { name, expectation: expected, detected, lines: results };
}

export interface FormatRow {
  readonly format: string;
  readonly files: number;
  readonly filesDetected: number;
  readonly lines: number;
  readonly linesOnPort: number;
  readonly fieldsChecked: number;
  readonly fieldsRight: number;
}

/** Per expected format: files detected right, lines on the right port, fields right. */
export function accuracyByFormat(results: readonly FileResult[]): FormatRow[] {
  const rows = new Map<string, { -readonly [K in keyof FormatRow]: FormatRow[K] }>();
  for (const file of results) {
    const format = file.expectation.format;
    let row = rows.get(format);
    if (row === undefined) {
      row = { format, files: 0, filesDetected: 0, lines: 0, linesOnPort: 0, fieldsChecked: 0, fieldsRight: 0 };
      rows.set(format, row);
    }
    row.files++;
    if (file.detected === format) row.filesDetected++;
    for (const line of file.lines) {
      row.lines++;
      if (line.port === line.expected.port) row.linesOnPort++;
      row.fieldsChecked += line.fieldsChecked;
      row.fieldsRight += line.fieldsRight;
    }
  }
  return [...rows.values()].sort((a, b) => a.format.localeCompare(b.format));
}
