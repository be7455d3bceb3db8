/** "did you mean" for misspelt keys, types, stage ids and ports. */
import { distance } from 'fastest-levenshtein';

/** The closest candidate, when it is close enough to be a plausible typo of `word`. */
export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  const lower = word.toLowerCase();
  // Two edits cover a transposition (`fiel` → `file`); longer words tolerate a third of their length.
  const limit = Math.min(Math.max(2, Math.floor(word.length / 3)), word.length - 1);
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const d = distance(lower, candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= limit ? best : undefined;
}

/** ` — did you mean `x`?` or nothing. */
export function didYouMeanSuffix(word: string, candidates: Iterable<string>): string {
  const match = didYouMean(word, candidates);
  return match === undefined ? '' : ` — did you mean \`${match}\`?`;
}

/** `a, b, c` */
export function list(items: Iterable<string>): string {
  return [...items].join(', ');
}
