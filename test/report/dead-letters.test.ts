/** The report's dead-letter section: counts by pipeline, stage and kind of reason, and a chart whose bars can be told apart. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { deadLetterSection } from '../../engine/report/dead-letters.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-report-dead-letters-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function letters(name: string, reasons: readonly string[]): string {
  const path = join(dir, `${name}.jsonl`);
  const lines = reasons.map((reason, i) =>
    JSON.stringify({ stage: 'parsed', reason, time: '2026-12-05T10:00:00Z', raw: `bad line ${i}` }),
  );
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

describe('dead-letter section', () => {
  it('labels a reason shared by two pipelines with each pipeline, and keeps the table by reason', async () => {
    const section = await deadLetterSection(
      [
        { pipeline: 'traffic', path: letters('traffic', ['combined: expected `"`', 'combined: expected `"`']) },
        { pipeline: 'threats', path: letters('threats', ['combined: expected `"`', 'timestamp: too old']) },
      ],
      {},
    );
    expect(section.table?.rows.map((row) => row.slice(0, 4))).toEqual([
      ['combined', 2, 'traffic', 'parsed'],
      ['combined', 1, 'threats', 'parsed'],
      ['timestamp', 1, 'threats', 'parsed'],
    ]);
    expect(section.chart?.labels).toEqual([
      'combined (traffic \u203a parsed)',
      'combined (threats \u203a parsed)',
      'timestamp (threats \u203a parsed)',
    ]);
  });

  it('labels bars by reason alone when no two reasons look alike', async () => {
    const section = await deadLetterSection(
      [{ pipeline: 'traffic', path: letters('single', ['combined: x', 'timestamp: y', 'combined: z']) }],
      {},
    );
    expect(section.chart?.labels).toEqual(['combined', 'timestamp']);
  });
});
