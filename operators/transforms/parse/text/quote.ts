/** Finding the end of a quoted value whose inner quotes the server escaped with a backslash. */

/** First `"` at or after `pos` that is not escaped with a backslash; -1 if none before `end`. */
export function closingQuote(line: string, pos: number, end: number, escaped: boolean): number {
  let q = line.indexOf('"', pos);
  if (escaped) while (q >= 0 && isEscaped(line, q, pos)) q = line.indexOf('"', q + 1);
  return q >= 0 && q < end ? q : -1;
}

/** Whether the character at `at` is preceded by an odd number of backslashes (after `from`). */
export function isEscaped(line: string, at: number, from: number): boolean {
  let n = 0;
  for (let i = at - 1; i >= from && line.charCodeAt(i) === 92; i--) n++;
  return (n & 1) === 1;
}
