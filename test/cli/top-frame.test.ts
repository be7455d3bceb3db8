/** `etl top`'s arithmetic on two scrapes: rates, dead letters, and p95 from histogram buckets. */
import { describe, expect, it } from 'vitest';
import { bucketQuantile, frame, parseScrape, render } from '../../engine/cli/commands/top.ts';
import { baseUrl } from '../../engine/cli/metrics-url.ts';

const labels = 'pipeline="web",component_id="store",component_kind="sink",component_type="postgres"';
const scrape = (received: number, buckets: Record<string, number>, lag: Record<string, number>) =>
  parseScrape(
    [
      '# TYPE etl_component_received_records_total counter',
      `etl_component_received_records_total{${labels}} ${received}`,
      '# TYPE etl_component_dead_lettered_records_total counter',
      `etl_component_dead_lettered_records_total{${labels}} 3`,
      '# TYPE etl_freshness_event_seconds histogram',
      ...Object.entries(buckets).map(([le, n]) => `etl_freshness_event_seconds_bucket{${labels},le="${le}"} ${n}`),
      '# TYPE etl_freshness_read_seconds histogram',
      ...Object.entries(lag).map(([le, n]) => `etl_freshness_read_seconds_bucket{${labels},le="${le}"} ${n}`),
      '',
    ].join('\n'),
  );

describe('etl top frames', () => {
  it('interpolates a quantile inside its bucket, as Prometheus does', () => {
    expect(
      bucketQuantile(
        [
          [0.5, 50],
          [1, 100],
          [Number.POSITIVE_INFINITY, 100],
        ],
        0.95,
      ),
    ).toBeCloseTo(0.95);
    expect(
      bucketQuantile(
        [
          [1, 0],
          [Number.POSITIVE_INFINITY, 0],
        ],
        0.95,
      ),
    ).toBeUndefined();
    expect(
      bucketQuantile(
        [
          [1, 10],
          [Number.POSITIVE_INFINITY, 100],
        ],
        0.95,
      ),
    ).toBe(Number.POSITIVE_INFINITY);
  });

  it('gives rates over the interval, and p95s of what was committed in it, past the last bound said so', () => {
    const before = scrape(1000, { '1': 10, '3600': 10, '+Inf': 10 }, { '0.5': 10, '1': 10, '+Inf': 10 });
    const after = scrape(3000, { '1': 10, '3600': 10, '+Inf': 110 }, { '0.5': 60, '1': 110, '+Inf': 110 });
    const f = frame(before, after, 2);
    expect(f.stages).toEqual([
      {
        pipeline: 'web',
        stage: 'store',
        kind: 'sink',
        type: 'postgres',
        inPerSecond: 1000,
        outPerSecond: 0,
        errors: 0,
        deadLetters: 3,
        freshnessP95: { seconds: 3600, over: true },
        commitLagP95: { seconds: 0.95, over: false },
      },
    ]);
    expect(baseUrl('http://127.0.0.1:9464/metrics/')).toBe('http://127.0.0.1:9464');
    expect(render(f, 'http://127.0.0.1:9464', 200, false)).not.toContain('q: quit');
    expect(render(f, 'http://127.0.0.1:9464', 200)).toMatch(
      /web\s+store\s+sink\s+postgres\s+1,000\s+0\s+0\s+3\s+> 3600 s\s+0.95 s/,
    );
  });
});
