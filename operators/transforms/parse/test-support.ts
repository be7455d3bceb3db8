/**
 * Drives the parse transform through its contract in tests: a context whose logger and metrics record
 * what they get, and raw records carrying origins as the file source makes them.
 */
import { readFileSync } from 'node:fs';
import type { Logger, OperatorContext } from '../../../engine/operator.ts';
import { type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import definition from './index.ts';
import type { ParseTransform } from './parse.ts';
import type { ParseOptions } from './schema.ts';

export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  fields: Record<string, unknown> | undefined;
}

export interface TestContext extends OperatorContext {
  readonly logs: LogEntry[];
  /** Metric values by `name{label=value,…}`. */
  readonly values: Map<string, number>;
}

function metricKey(name: string, labels: Record<string, string> = {}): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  return parts.length === 0 ? name : `${name}{${parts.join(',')}}`;
}

export function testContext(id = 'parsed'): TestContext {
  const logs: LogEntry[] = [];
  const values = new Map<string, number>();
  const log =
    (level: LogEntry['level']) =>
    (message: string, fields?: Record<string, unknown>): void => {
      logs.push({ level, message, fields });
    };
  const logger: Logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
  return {
    pipeline: 'test',
    id,
    logger,
    signal: new AbortController().signal,
    dataDir: process.cwd(),
    baseDir: process.cwd(),
    metrics: {
      counter: (name, _help, labels) => ({
        inc: (value = 1) => values.set(metricKey(name, labels), (values.get(metricKey(name, labels)) ?? 0) + value),
      }),
      gauge: (name, _help, labels) => ({ set: (value) => values.set(metricKey(name, labels), value) }),
    },
    requestCheckpoint: () => {},
    logs,
    values,
  };
}

/** Options with the schema defaults applied, as the loader would. */
export function options(overrides: Partial<ParseOptions> = {}): ParseOptions {
  const defaults = definition.examples[0] as ParseOptions;
  return { ...defaults, ...overrides } as ParseOptions;
}

export function createParse(overrides: Partial<ParseOptions> = {}, ctx = testContext()): ParseTransform {
  return definition.create(options(overrides), ctx) as ParseTransform;
}

/** Raw records as a file source emits them: message, origin with file, 1-based line and byte offset. */
export function rawRecords(text: string, file = 'access.log'): EtlRecord[] {
  const records: EtlRecord[] = [];
  let offset = 0;
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  lines.forEach((message, i) => {
    records.push({ message, [ORIGIN]: { source: 'logs', file, offset, line: i + 1 } });
    offset += Buffer.byteLength(message) + 1;
  });
  return records;
}

export function fixture(name: string): string {
  return readFileSync(new URL(`./testdata/${name}`, import.meta.url), 'utf8');
}
