/** The address of a metrics server (a run's, or `etl serve`'s) as `etl top` and `etl tap` take it. */

/** What the user gave, without a trailing `/metrics` or `/tap` they may have copied with it. */
export function baseUrl(url: string): string {
  return url.replace(/\/+$/, '').replace(/\/(metrics|tap)$/, '');
}
