/**
 * Drives the parse transform through its contract in tests: a context whose logger and metrics record
 * what they get, and raw records carrying origins as the file source makes them.
 */
import { readFileSync } from 'node:fs';
import { type RecordingContext, recordingContext } from '../../../test/support/context.ts';
import { type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import definition from './index.ts';
import type { ParseTransform } from './parse.ts';
import type { ParseOptions } from './schema.ts';

export type { LogEntry, RecordingContext as TestContext } from '../../../test/support/context.ts';

export function testContext(id = 'parsed'): RecordingContext {
  return recordingContext({ id });
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
