/**
 * `etl top`: a live view of a running pipeline, like `vector top`, read from its metrics endpoint: per stage the
 * records in and out per second, errors and dead letters; the backlog per edge; per sink the freshness p95; the
 * age of the last checkpoint and the process's memory. Redrawn every `--interval` seconds on the terminal's
 * alternate screen; `q` or Ctrl-C quits. `--once` prints one frame (two scrapes apart) and exits.
 */
import { baseUrl } from '../metrics-url.ts';
import parsePrometheusTextFormat, { type PromFamily } from 'parse-prometheus-text-format';

export interface TopOptions {
  readonly url: string;
  readonly intervalMs: number;
  readonly once: boolean;
  readonly out: NodeJS.WriteStream | NodeJS.WritableStream;
  readonly err: NodeJS.WritableStream;
  readonly input?: NodeJS.ReadStream;
  readonly signal?: AbortSignal;
}

/** Series of one scrape: `name{label="v",…}` → value; histogram buckets are series like any other. */
export type Scrape = Map<string, { readonly labels: Readonly<Record<string, string>>; readonly value: number }[]>;

/**
 * The parser folds a labelled histogram's series into one and drops their labels: read as what they are made of
 * (untyped `_bucket`, `_sum`, `_count` series, labels kept), by leaving their TYPE lines out.
 */
export function parseScrape(text: string): Scrape {
  const kept = text
    .split('\n')
    .filter((line) => !/^# TYPE \S+ histogram$/.test(line))
    .join('\n');
  const scrape: Scrape = new Map();
  for (const family of parsePrometheusTextFormat(kept) as PromFamily[]) {
    scrape.set(
      family.name,
      family.metrics.map((m) => ({ labels: m.labels ?? {}, value: Number(m.value) })),
    );
  }
  return scrape;
}

export interface StageRow {
  readonly pipeline: string;
  readonly stage: string;
  readonly kind: string;
  readonly type: string;
  readonly inPerSecond: number;
  readonly outPerSecond: number;
  readonly errors: number;
  readonly deadLetters: number;
  /** Sinks: p95 of (commit time − event time) over the interval. */
  readonly freshnessP95?: Quantile;
  /** Sinks: p95 of (commit time − read time) over the interval: the pipeline's own share of it. */
  readonly commitLagP95?: Quantile;
}

/** Seconds; `over`: past the histogram's last finite bound, which `seconds` then is. */
export interface Quantile {
  readonly seconds: number;
  readonly over: boolean;
}

export interface Frame {
  readonly stages: StageRow[];
  readonly edges: Array<{ pipeline: string; from: string; to: string; backlog: number }>;
  readonly checkpointAge: Array<{ pipeline: string; seconds: number }>;
  readonly rssBytes?: number;
  readonly cpuPercent?: number;
}

const stageKey = (l: Readonly<Record<string, string>>) => `${l.pipeline}\u0000${l.component_id}`;

function sums(scrape: Scrape, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of scrape.get(name) ?? []) out.set(stageKey(s.labels), (out.get(stageKey(s.labels)) ?? 0) + s.value);
  return out;
}

/** The q-quantile of cumulative buckets (`le` → count), interpolated inside the bucket as Prometheus does. */
export function bucketQuantile(buckets: Array<[le: number, count: number]>, q: number): number | undefined {
  const sorted = buckets.sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [le, count] of sorted) {
    if (count >= rank) {
      // Past the last finite bound: more than it, by how much the histogram cannot tell.
      if (!Number.isFinite(le)) return Number.POSITIVE_INFINITY;
      return lowerBound + ((le - lowerBound) * (rank - lowerCount)) / Math.max(1, count - lowerCount);
    }
    lowerBound = le;
    lowerCount = count;
  }
  return lowerBound;
}

/** What changed between two scrapes `seconds` apart. */
export function frame(before: Scrape, after: Scrape, seconds: number): Frame {
  const inBefore = sums(before, 'etl_component_received_records_total');
  const inAfter = sums(after, 'etl_component_received_records_total');
  const outBefore = sums(before, 'etl_component_sent_records_total');
  const outAfter = sums(after, 'etl_component_sent_records_total');
  const errors = sums(after, 'etl_component_errors_total');
  const dead = after.has('etl_component_dead_lettered_records_total')
    ? sums(after, 'etl_component_dead_lettered_records_total')
    : sums(after, 'etl_component_discarded_records_total');
  const stages: StageRow[] = [];
  const seen = new Set<string>();
  for (const family of ['etl_component_received_records_total', 'etl_component_sent_records_total']) {
    for (const { labels } of after.get(family) ?? []) {
      const key = stageKey(labels);
      if (seen.has(key)) continue;
      seen.add(key);
      const rate = (a: Map<string, number>, b: Map<string, number>) =>
        seconds > 0 ? Math.max(0, ((a.get(key) ?? 0) - (b.get(key) ?? 0)) / seconds) : 0;
      const freshness = histogramP95(before, after, labels, 'etl_freshness_event_seconds_bucket');
      const lag = histogramP95(before, after, labels, 'etl_freshness_read_seconds_bucket');
      stages.push({
        pipeline: labels.pipeline ?? '',
        stage: labels.component_id ?? '',
        kind: labels.component_kind ?? '',
        type: labels.component_type ?? '',
        inPerSecond: rate(inAfter, inBefore),
        outPerSecond: rate(outAfter, outBefore),
        errors: errors.get(key) ?? 0,
        deadLetters: dead.get(key) ?? 0,
        ...(freshness === undefined ? {} : { freshnessP95: freshness }),
        ...(lag === undefined ? {} : { commitLagP95: lag }),
      });
    }
  }
  const order = { source: 0, transform: 1, sink: 2 } as Record<string, number>;
  stages.sort((a, b) => a.pipeline.localeCompare(b.pipeline) || (order[a.kind] ?? 3) - (order[b.kind] ?? 3));
  const one = (name: string) => after.get(name)?.[0]?.value;
  const cpuBefore = before.get('process_cpu_seconds_total')?.[0]?.value;
  const cpuAfter = one('process_cpu_seconds_total');
  const rss = one('process_resident_memory_bytes');
  return {
    stages,
    edges: (after.get('etl_edge_inflight_batches') ?? []).map((s) => ({
      pipeline: s.labels.pipeline ?? '',
      from: s.labels.from ?? '',
      to: s.labels.to ?? '',
      backlog: s.value,
    })),
    checkpointAge: (after.get('etl_checkpoint_age_seconds') ?? []).map((s) => ({
      pipeline: s.labels.pipeline ?? '',
      seconds: s.value,
    })),
    ...(rss === undefined ? {} : { rssBytes: rss }),
    ...(cpuBefore === undefined || cpuAfter === undefined || seconds <= 0
      ? {}
      : { cpuPercent: ((cpuAfter - cpuBefore) / seconds) * 100 }),
  };
}

/** p95 of a stage's histogram `name` between the scrapes (all of it on the first frame). */
function histogramP95(
  before: Scrape,
  after: Scrape,
  labels: Readonly<Record<string, string>>,
  name: string,
): Quantile | undefined {
  const mine = (s: { labels: Readonly<Record<string, string>> }) => stageKey(s.labels) === stageKey(labels);
  const earlier = new Map((before.get(name) ?? []).filter(mine).map((s) => [s.labels.le, s.value]));
  const buckets: Array<[number, number]> = (after.get(name) ?? [])
    .filter(mine)
    .map((s) => [
      s.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.labels.le),
      s.value - (earlier.get(s.labels.le) ?? 0),
    ]);
  if (buckets.length === 0) return undefined;
  const value = bucketQuantile(buckets, 0.95);
  if (value === undefined) return undefined;
  const lastBound = Math.max(0, ...buckets.map(([le]) => le).filter(Number.isFinite));
  return Number.isFinite(value) ? { seconds: value, over: false } : { seconds: lastBound, over: true };
}

const count = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function render(f: Frame, url: string, width = 100, live = true): string {
  const lines: string[] = [];
  const header = [`etl top — ${url}`];
  for (const c of f.checkpointAge) header.push(`${c.pipeline}: checkpoint ${c.seconds.toFixed(1)} s ago`);
  if (f.rssBytes !== undefined) header.push(`RSS ${Math.round(f.rssBytes / 1048576)} MiB`);
  if (f.cpuPercent !== undefined) header.push(`CPU ${Math.round(f.cpuPercent)}%`);
  lines.push(header.join('   '), '');
  const columns = [
    'PIPELINE',
    'STAGE',
    'KIND',
    'TYPE',
    'IN/S',
    'OUT/S',
    'ERRORS (TOTAL)',
    'DEAD LETTERS (TOTAL)',
    'FRESHNESS P95',
    'READ→COMMIT P95',
  ];
  const seconds = (q: Quantile | undefined) =>
    q === undefined ? '' : q.over ? `> ${q.seconds} s` : `${q.seconds.toFixed(2)} s`;
  const rows = f.stages.map((s) => [
    s.pipeline,
    s.stage,
    s.kind,
    s.type,
    count.format(s.inPerSecond),
    count.format(s.outPerSecond),
    count.format(s.errors),
    count.format(s.deadLetters),
    seconds(s.freshnessP95),
    seconds(s.commitLagP95),
  ]);
  lines.push(...table(columns, rows));
  if (f.edges.length > 0) {
    lines.push(
      '',
      ...table(
        ['PIPELINE', 'EDGE', 'BACKLOG (BATCHES)'],
        f.edges.map((e) => [e.pipeline, `${e.from} → ${e.to}`, count.format(e.backlog)]),
      ),
    );
  }
  if (live) lines.push('', 'q: quit');
  return lines.map((l) => l.slice(0, Math.max(20, width))).join('\n');
}

function table(columns: string[], rows: string[][]): string[] {
  const widths = columns.map((c, i) => Math.max(c.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = (i: number) => i >= 4 || columns[i]?.startsWith('BACKLOG') === true;
  const line = (cells: string[]) =>
    cells.map((cell, i) => (numeric(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0))).join('  ');
  return [line(columns), ...rows.map(line)];
}

async function scrape(url: string, signal: AbortSignal): Promise<Scrape> {
  const response = await fetch(`${baseUrl(url)}/metrics`, { signal });
  if (!response.ok) throw new Error(`HTTP ${response.status} from ${url}/metrics`);
  return parseScrape(await response.text());
}

export async function runTop(options: TopOptions): Promise<number> {
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      const early = () => {
        clearTimeout(timer);
        resolve();
      };
      signal.addEventListener('abort', early, { once: true });
    });
  let previous: { scrape: Scrape; at: number };
  try {
    previous = { scrape: await scrape(options.url, signal), at: performance.now() };
  } catch (error) {
    options.err.write(
      `etl top: cannot read ${options.url}/metrics (${(error as Error).cause ?? (error as Error).message}): a pipeline ` +
        'serves metrics when it sets telemetry.metrics.prometheus_port; give its address with --url\n',
    );
    return 1;
  }
  const out = options.out as NodeJS.WriteStream;
  const live = !options.once && out.isTTY === true;
  const input = options.input;
  const onKey = (key: Buffer) => {
    if (key.toString() === 'q' || key[0] === 3) stop.abort();
  };
  if (live) {
    out.write('\x1b[?1049h\x1b[?25l');
    if (input?.isTTY) {
      input.setRawMode(true);
      input.resume();
      input.on('data', onKey);
    }
  }
  try {
    while (!signal.aborted) {
      await wait(options.intervalMs);
      if (signal.aborted) break;
      let current: Scrape;
      try {
        current = await scrape(options.url, signal);
      } catch (error) {
        if (signal.aborted) break;
        if (live) out.write('\x1b[H\x1b[2J');
        options.err.write(`etl top: the pipeline at ${options.url} stopped answering (${(error as Error).message})\n`);
        return 1;
      }
      const at = performance.now();
      const text = render(
        frame(previous.scrape, current, (at - previous.at) / 1000),
        baseUrl(options.url),
        out.columns ?? 120,
        live,
      );
      previous = { scrape: current, at };
      if (live) out.write(`\x1b[H\x1b[2J${text}\n`);
      else out.write(`${text}\n`);
      if (options.once) break;
    }
    return 0;
  } finally {
    if (live) {
      out.write('\x1b[?25h\x1b[?1049l');
      if (input?.isTTY) {
        input.off('data', onKey);
        input.setRawMode(false);
        input.pause();
      }
    }
  }
}
