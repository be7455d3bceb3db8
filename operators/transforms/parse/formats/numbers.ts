/** Number scanning shared by the formats: no allocation, no Number() on the hot path. */

/** Non-negative decimal integer in `line[s, e)`, -1 when empty or not digits. */
export function intValue(line: string, s: number, e: number): number {
  if (e <= s || e - s > 16) return -1;
  let v = 0;
  for (let i = s; i < e; i++) {
    const d = line.charCodeAt(i) - 48;
    if (!(d >= 0 && d <= 9)) return -1;
    v = v * 10 + d;
  }
  return v;
}

/** `1.234` seconds → 1234 ms, exactly for up to three decimals; -1 when invalid. */
export function secondsToMs(text: string, s: number, e: number): number {
  const dot = text.indexOf('.', s);
  if (dot < 0 || dot >= e) {
    const whole = intValue(text, s, e);
    return whole < 0 ? -1 : whole * 1000;
  }
  const whole = dot === s ? 0 : intValue(text, s, dot);
  const digits = e - dot - 1;
  const frac = digits === 0 ? 0 : intValue(text, dot + 1, e);
  if (whole < 0 || frac < 0) return -1;
  if (digits <= 3) return whole * 1000 + frac * 10 ** (3 - digits);
  return whole * 1000 + frac / 10 ** (digits - 3);
}

/** Sum of `0.001, 0.002 : 0.003` in ms; -1 when every item is `-`; NaN when an item is not a time. */
export function upstreamTotalMs(text: string): number {
  let total = 0;
  let any = false;
  let i = 0;
  const n = text.length;
  while (i < n) {
    while (i < n && (text.charCodeAt(i) === 32 || text.charCodeAt(i) === 44 || text.charCodeAt(i) === 58)) i++;
    if (i >= n) break;
    let j = i;
    while (j < n && text.charCodeAt(j) !== 32 && text.charCodeAt(j) !== 44) j++;
    if (!(j - i === 1 && text.charCodeAt(i) === 45)) {
      const ms = secondsToMs(text, i, j);
      if (ms < 0) return Number.NaN;
      total += ms;
      any = true;
    }
    i = j;
  }
  return any ? Math.round(total * 1000) / 1000 : -1;
}
