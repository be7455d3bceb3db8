/**
 * Detection and fields on the corpus of real-world lines (testdata/corpus/): every file is detected as
 * its expectation says, and every line leaves on the expected port with the expected field values.
 */
import { describe, expect, it } from 'vitest';
import { createAjv } from '../../../engine/schema/ajv.ts';
import { corpusFiles, runCorpusFile } from './corpus-support.ts';
import { accessRecordSchema, errorLogRecordSchema } from '../../shared/log-records.ts';

const validAccess = createAjv().compile(accessRecordSchema);
const validErrorLog = createAjv().compile(errorLogRecordSchema);

describe('corpus of real-world lines', () => {
  it('has files, each with its source and licence', () => {
    expect(corpusFiles().length).toBeGreaterThanOrEqual(10);
    for (const name of corpusFiles()) {
      const { expectation, lines } = runCorpusFile(name);
      expect(expectation.source.repo, name).toMatch(/^[\w.-]+\/[\w.-]+$/);
      expect(expectation.source.licence, name).not.toBe('');
      expect(expectation.lines.length, name).toBe(lines.length);
    }
  });

  for (const name of corpusFiles()) {
    it(`detects and parses ${name}`, () => {
      const result = runCorpusFile(name);
      expect(result.detected).toBe(result.expectation.format);
      const wrong = result.lines.filter((l) => l.mismatches.length > 0).map((l) => `line ${l.line}: ${l.mismatches}`);
      expect(wrong).toEqual([]);
      for (const line of result.lines) {
        if (line.port === 'default') expect(validAccess(line.record), JSON.stringify(validAccess.errors)).toBe(true);
        if (line.port === 'error_log')
          expect(validErrorLog(line.record), JSON.stringify(validErrorLog.errors)).toBe(true);
      }
    });
  }
});
