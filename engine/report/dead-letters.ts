/** The dead-letter section, from the JSON-lines files the pipelines' file sinks write their dead letters to. */
import { readFile } from 'node:fs/promises';
import { chartOf, type DataTable, type Section } from './model.ts';
import { type Period, TOP } from './query.ts';
import type { DeadLetterFile } from './sources.ts';

/** Dead letters, from the JSON-lines files the pipelines route their `.dead_letter` ports to. */
export async function deadLetterSection(files: readonly DeadLetterFile[], period: Period): Promise<Section> {
  const counts = new Map<string, { pipeline: string; stage: string; reason: string; count: number; example: string }>();
  const read: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file.path, 'utf8');
    } catch {
      continue; // Nothing was rejected yet: the file sink creates it on the first dead letter.
    }
    read.push(file.path);
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      let letter: { stage?: unknown; reason?: unknown; time?: unknown; raw?: unknown };
      try {
        letter = JSON.parse(line) as typeof letter;
      } catch {
        continue; // A line cut short by a crash mid-write.
      }
      const time = typeof letter.time === 'string' ? Date.parse(letter.time) : Number.NaN;
      if (
        !Number.isNaN(time) &&
        ((period.from && time < period.from.getTime()) || (period.to && time >= period.to.getTime()))
      )
        continue;
      const stage = typeof letter.stage === 'string' ? letter.stage : 'unknown';
      // A reason's details (columns, values) come after its first `;` or `:`; the kind comes before.
      const reason =
        (typeof letter.reason === 'string' ? letter.reason : 'no reason').split(/[;:]/)[0]?.trim() || 'no reason';
      const key = `${file.pipeline}\u0000${stage}\u0000${reason}`;
      const entry = counts.get(key) ?? { pipeline: file.pipeline, stage, reason, count: 0, example: '' };
      entry.count++;
      if (!entry.example && typeof letter.raw === 'string') entry.example = letter.raw.slice(0, 120);
      counts.set(key, entry);
    }
  }
  const sorted = [...counts.values()]
    .sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason))
    .slice(0, TOP);
  const data: DataTable = {
    columns: [
      { label: 'Reason', kind: 'text' },
      { label: 'Dead letters', kind: 'count' },
      { label: 'Pipeline', kind: 'text' },
      { label: 'Stage', kind: 'text' },
      { label: 'Example', kind: 'text' },
    ],
    rows: sorted.map((e) => [e.reason, e.count, e.pipeline, e.stage, e.example]),
  };
  // One reason can come from several pipelines or stages: the chart's labels say which, so no two bars look alike.
  const plain = sorted.length > 0 ? chartOf(data, 'bar', 0, [1]) : undefined;
  const chart =
    plain && new Set(plain.labels).size < plain.labels.length
      ? { ...plain, labels: sorted.map((e) => `${e.reason} (${e.pipeline} \u203a ${e.stage})`) }
      : plain;
  return {
    id: 'dead-letters',
    title: 'Dead letters',
    note:
      read.length === 0
        ? 'No dead letters: none of the pipelines\u2019 dead-letter files exists.'
        : `Records set aside with a reason, by kind of reason, from ${read.join(', ')} (time of rejection).`,
    table: data,
    ...(chart ? { chart } : {}),
  };
}
