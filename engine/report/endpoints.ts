/** The endpoint latency section, from the performance pipeline's per-endpoint rollups. */
import { chartOf, type Missing, type Section } from './model.ts';
import { has, type Period, TOP, table, within } from './query.ts';
import { rows, type Sources, type StoredTable } from './sources.ts';

/** Per-endpoint latency from the coarsest rollup of the performance pipeline (endpoint_hour over endpoint_minute). */
export async function endpointSection(sources: Sources, period: Period, sections: Section[], missing: Missing[]) {
  const candidates = sources.tables.filter((t) => has(t, 'window_start', 'endpoint', 'requests', 'latency_p95_ms'));
  if (candidates.length === 0) {
    missing.push({
      title: 'Endpoint latency',
      reason: 'no per-endpoint latency rollup in these pipelines (add --pipeline pipelines/performance.yaml)',
    });
    return;
  }
  // The coarsest rollup has the fewest rows; its percentiles are the steadiest.
  let best = candidates[0] as StoredTable;
  let fewest = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const [[n]] = (await rows(c.session, `SELECT count(*) FROM ${c.sql}`)) as [[number]];
    if (n < fewest) [best, fewest] = [c, n];
  }
  const errors = has(best, 'errors_5xx');
  const data = table(
    [
      { label: 'Endpoint', kind: 'text' },
      { label: 'Requests', kind: 'count' },
      ...(errors ? [{ label: '5xx', kind: 'count' as const }] : []),
      { label: 'p95, worst window', kind: 'ms' },
      { label: 'p95, median window', kind: 'ms' },
    ],
    await rows(
      best.session,
      `SELECT endpoint, sum(requests)::bigint ${errors ? ', sum(errors_5xx)::bigint' : ''},
              max(latency_p95_ms)::float8,
              (percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_p95_ms))::float8
         FROM ${best.sql} WHERE ${within('window_start', period)} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ${TOP}`,
    ),
  );
  const p95 = errors ? 3 : 2;
  sections.push({
    id: 'endpoints',
    title: 'Endpoint latency',
    note:
      `The ${TOP} busiest endpoint templates, from ${best.name}: p95 latency of the slowest window, and the median ` +
      'of the windows\u2019 p95 (percentiles of separate windows do not add up to one over the period).',
    table: data,
    chart: chartOf(data, 'bar', 0, [p95, p95 + 1]),
  });
}
