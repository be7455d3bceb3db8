/**
 * The report's sections, each one SQL query over the table that holds what it needs, recognised by its
 * columns: the raw requests (traffic_hits, or requests of the threats pipeline), threats, alerts and the
 * per-endpoint latency rollup. A section whose table no pipeline has is listed as missing, with what fills it.
 */
import { readFile } from 'node:fs/promises';
import { type Cell, chartOf, type DataTable, type Missing, type Report, type Section, type Total } from './model.ts';
import { type DeadLetterFile, ident, literal, rows, type Sources, type StoredTable } from './sources.ts';

export interface Period {
  readonly from?: Date;
  readonly to?: Date;
}

const TOP = 15;

function has(table: StoredTable, ...columns: string[]): boolean {
  return columns.every((c) => table.columns.has(c));
}

/** `AND`-able condition on `column` for the period (dates validated by the caller, written as ISO literals). */
function within(column: string, period: Period, alias?: string): string {
  const name = alias ? `${alias}.${ident(column)}` : ident(column);
  const parts = ['TRUE'];
  if (period.from) parts.push(`${name} >= ${literal(period.from.toISOString())}::timestamptz`);
  if (period.to) parts.push(`${name} < ${literal(period.to.toISOString())}::timestamptz`);
  return parts.join(' AND ');
}

/** The table of raw requests: the one with the most columns (the enriched one) among those that qualify. */
function rawTable(tables: readonly StoredTable[]): StoredTable | undefined {
  return tables
    .filter((t) => has(t, 'timestamp', 'client_ip', 'status', 'path') && t.ports.has('default') && t.ports.size === 1)
    .sort((a, b) => b.columns.size - a.columns.size)[0];
}

function table(columns: DataTable['columns'], data: unknown[][]): DataTable {
  return { columns, rows: data.map((row) => row.map(cellOf)) };
}

function cellOf(value: unknown): Cell {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'number' || typeof value === 'string') return value;
  return String(value);
}

export async function buildReport(
  sources: Sources,
  options: { readonly pipelines: readonly string[]; readonly period: Period; readonly now: Date },
): Promise<Report> {
  const { period } = options;
  const sections: Section[] = [];
  const missing: Missing[] = [];
  let totals: Total[] = [];
  let span: Report['period'] = {
    from: period.from?.toISOString() ?? null,
    to: period.to?.toISOString() ?? null,
  };

  const raw = rawTable(sources.tables);
  if (raw) {
    const w = within('timestamp', period);
    const s = raw.session;
    const t = raw.sql;
    const bots = has(raw, 'ua_is_bot');
    const [summary] = await rows(
      s,
      `SELECT count(*), count(DISTINCT client_ip), coalesce(sum(bytes), 0)::float8, min("timestamp"), max("timestamp"),
              ${bots ? 'count(*) FILTER (WHERE ua_is_bot)' : 'NULL'}, ${has(raw, 'session_id') ? 'count(DISTINCT session_id)' : 'NULL'}
         FROM ${t} WHERE ${w}`,
    );
    const [requests, visitors, bytes, first, last, botCount, visits] = summary ?? [];
    span = {
      from: span.from ?? (first instanceof Date ? first.toISOString() : null),
      to: span.to ?? (last instanceof Date ? last.toISOString() : null),
    };
    totals = [
      { label: 'Requests', value: Number(requests ?? 0), kind: 'count' },
      { label: 'Unique visitors', value: Number(visitors ?? 0), kind: 'count' },
      ...(visits === null || visits === undefined
        ? []
        : [{ label: 'Visits (30-min sessions)', value: Number(visits), kind: 'count' as const }]),
      { label: 'Bandwidth', value: Number(bytes ?? 0), kind: 'bytes' },
      ...(botCount === null || botCount === undefined
        ? []
        : [{ label: 'Bot requests', value: Number(botCount), kind: 'count' as const }]),
    ];
    const days = first instanceof Date && last instanceof Date ? (last.getTime() - first.getTime()) / 86_400_000 : 0;
    const unit = days > 14 ? 'day' : 'hour';

    const overTime = table(
      [
        { label: unit === 'day' ? 'Day' : 'Hour', kind: 'time' },
        { label: 'Requests', kind: 'count' },
        { label: 'Visitors', kind: 'count' },
        ...(bots ? [{ label: 'Bots', kind: 'count' as const }] : []),
        { label: 'Bytes', kind: 'bytes' },
      ],
      await rows(
        s,
        `SELECT date_trunc('${unit}', "timestamp"), count(*), count(DISTINCT client_ip),
                ${bots ? 'count(*) FILTER (WHERE ua_is_bot),' : ''} coalesce(sum(bytes), 0)::float8
           FROM ${t} WHERE ${w} GROUP BY 1 ORDER BY 1`,
      ),
    );
    sections.push({
      id: 'requests-over-time',
      title: 'Requests over time',
      note: `Requests${bots ? ', distinct client addresses and bot requests' : ' and distinct client addresses'} per ${unit}, from ${raw.name}.`,
      table: overTime,
      chart: chartOf(overTime, 'line', 0, bots ? [1, 2, 3] : [1, 2]),
    });

    const status = table(
      [
        { label: 'Status class', kind: 'text' },
        { label: 'Requests', kind: 'count' },
        { label: 'Share', kind: 'percent' },
      ],
      await rows(
        s,
        `SELECT coalesce((status / 100)::text || 'xx', 'unknown'), count(*),
                round(100.0 * count(*) / sum(count(*)) OVER (), 2)::float8
           FROM ${t} WHERE ${w} GROUP BY 1 ORDER BY 1`,
      ),
    );
    sections.push({
      id: 'status-classes',
      title: 'Status classes',
      note: `Responses by the first digit of their status, from ${raw.name}.`,
      table: status,
      chart: chartOf(status, 'doughnut', 0, [1]),
    });

    const latency = has(raw, 'request_time_ms');
    const paths = table(
      [
        { label: 'Path', kind: 'text' },
        { label: 'Requests', kind: 'count' },
        { label: 'Visitors', kind: 'count' },
        { label: 'Bytes', kind: 'bytes' },
        ...(latency ? [{ label: 'p95 latency', kind: 'ms' as const }] : []),
      ],
      await rows(
        s,
        `SELECT path, count(*), count(DISTINCT client_ip), coalesce(sum(bytes), 0)::float8
                ${latency ? ', (percentile_cont(0.95) WITHIN GROUP (ORDER BY request_time_ms))::float8' : ''}
           FROM ${t} WHERE ${w} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ${TOP}`,
      ),
    );
    sections.push({
      id: 'top-paths',
      title: 'Top requested paths',
      note: `The ${TOP} most requested paths${latency ? ', with the exact 95th percentile of their response time (empty when the log format has none)' : ''}, from ${raw.name}.`,
      table: paths,
      chart: chartOf(paths, 'bar', 0, [1]),
    });

    const notFound = table(
      [
        { label: 'Path', kind: 'text' },
        { label: 'Requests', kind: 'count' },
        { label: 'Addresses', kind: 'count' },
      ],
      await rows(
        s,
        `SELECT path, count(*), count(DISTINCT client_ip) FROM ${t}
          WHERE ${w} AND status = 404 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ${TOP}`,
      ),
    );
    sections.push({
      id: 'not-found',
      title: 'Not found (404)',
      note: `The ${TOP} paths most often answered 404: broken links, or someone probing, from ${raw.name}.`,
      table: notFound,
      chart: chartOf(notFound, 'bar', 0, [1]),
    });

    const breakdown = async (id: string, title: string, one: string, column: string, what: string) => {
      if (!has(raw, column)) {
        missing.push({ title, reason: `${raw.name} has no column ${column} (${what})` });
        return;
      }
      const data = table(
        [
          { label: one, kind: 'text' },
          { label: 'Requests', kind: 'count' },
          { label: 'Visitors', kind: 'count' },
          { label: 'Bytes', kind: 'bytes' },
        ],
        await rows(
          s,
          `SELECT coalesce(${ident(column)}::text, 'unknown'), count(*), count(DISTINCT client_ip), coalesce(sum(bytes), 0)::float8
             FROM ${t} WHERE ${w} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ${TOP}`,
        ),
      );
      sections.push({
        id,
        title,
        note: `The ${TOP} largest by requests, from ${raw.name}.${column}.`,
        table: data,
        chart: chartOf(data, 'bar', 0, [1]),
      });
    };
    await breakdown('countries', 'Countries', 'Country', 'geo_country', 'the geoip operator adds it');
    await breakdown('browsers', 'Browsers', 'Browser', 'ua_browser', 'the user_agent operator adds it');
    await breakdown('devices', 'Devices', 'Device type', 'ua_device_type', 'the user_agent operator adds it');
    await breakdown(
      'operating-systems',
      'Operating systems',
      'Operating system',
      'ua_os',
      'the user_agent operator adds it',
    );

    if (bots) {
      const botTable = table(
        [
          { label: 'Bot', kind: 'text' },
          { label: 'Requests', kind: 'count' },
          { label: 'Addresses', kind: 'count' },
        ],
        await rows(
          s,
          `SELECT coalesce(ua_bot_name, ua_browser, 'unnamed'), count(*), count(DISTINCT client_ip)
             FROM ${t} WHERE ${w} AND ua_is_bot GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ${TOP}`,
        ),
      );
      sections.push({
        id: 'bots',
        title: 'Bots',
        note: `Requests whose User-Agent is a crawler or tool, by bot; ${Number(botCount ?? 0)} of ${Number(requests ?? 0)} requests.`,
        table: botTable,
        chart: chartOf(botTable, 'bar', 0, [1]),
      });
    } else {
      missing.push({ title: 'Bots', reason: `${raw.name} has no column ua_is_bot (the user_agent operator adds it)` });
    }

    if (has(raw, 'referrer')) {
      const referrers = table(
        [
          { label: 'Referrer', kind: 'text' },
          { label: 'Requests', kind: 'count' },
          { label: 'Visitors', kind: 'count' },
        ],
        await rows(
          s,
          `SELECT referrer, count(*), count(DISTINCT client_ip) FROM ${t}
            WHERE ${w} AND referrer IS NOT NULL AND referrer NOT IN ('', '-') GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ${TOP}`,
        ),
      );
      sections.push({
        id: 'referrers',
        title: 'Referrers',
        note: `The ${TOP} referring pages that sent the most requests, from ${raw.name}.`,
        table: referrers,
        chart: chartOf(referrers, 'bar', 0, [1]),
      });
    }
  } else {
    missing.push({
      title: 'Traffic (totals, requests over time, status, paths, countries, browsers, devices, bots)',
      reason: 'no pipeline stores raw requests (pipelines/traffic.yaml does, into traffic_hits)',
    });
  }

  if (sources.absent.length > 0) {
    missing.push({
      title: 'Tables not created yet',
      reason: `${sources.absent.join(', ')}: \`etl apply\` on their pipeline creates them`,
    });
  }
  await endpointSection(sources, period, sections, missing);
  await threatSections(sources, period, sections, missing);
  sections.push(await deadLetterSection(sources.deadLetters, period));

  return {
    title: `Access log report: ${options.pipelines.join(', ')}`,
    generatedAt: options.now.toISOString(),
    pipelines: options.pipelines,
    period: span,
    totals,
    sections,
    missing,
  };
}

/** Per-endpoint latency from the coarsest rollup of the performance pipeline (endpoint_hour over endpoint_minute). */
async function endpointSection(sources: Sources, period: Period, sections: Section[], missing: Missing[]) {
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

async function threatSections(sources: Sources, period: Period, sections: Section[], missing: Missing[]) {
  // The records of threat_intel's `threats` port: every row a threat (its default port passes all requests on).
  const threats = sources.tables.find(
    (t) => has(t, 'timestamp', 'client_ip', 'threat_rules') && t.ports.has('threats'),
  );
  if (!threats) {
    missing.push({
      title: 'Threats',
      reason: 'no threats table in these pipelines (add --pipeline pipelines/threats.yaml)',
    });
    return;
  }
  const w = within('timestamp', period);
  const byRule = table(
    [
      { label: 'Rule or list', kind: 'text' },
      { label: 'Category', kind: 'text' },
      { label: 'Requests', kind: 'count' },
      { label: 'Addresses', kind: 'count' },
    ],
    await rows(
      threats.session,
      `SELECT coalesce(nullif(threat_rules, ''), 'list: ' || threat_lists, 'unknown'), coalesce(threat_categories, ''),
              count(*), count(DISTINCT client_ip)
         FROM ${threats.sql} WHERE ${w} GROUP BY 1, 2 ORDER BY 3 DESC, 1 LIMIT ${TOP}`,
    ),
  );
  sections.push({
    id: 'threats',
    title: 'Threats by rule',
    note: `Requests that matched an attack signature or a block list, from ${threats.name}.`,
    table: byRule,
    chart: chartOf(byRule, 'bar', 0, [2]),
  });
  const alerts = sources.tables.find((t) => has(t, 'window_start', 'client_ip', 'threat_lists', 'requests'));
  const byClient = table(
    [
      { label: 'Client address', kind: 'text' },
      { label: 'Requests', kind: 'count' },
      { label: 'Rules', kind: 'text' },
      ...(alerts ? [{ label: 'Alerts', kind: 'count' as const }] : []),
    ],
    await rows(
      threats.session,
      `SELECT host(h.client_ip), count(*), string_agg(DISTINCT coalesce(nullif(h.threat_rules, ''), 'list: ' || h.threat_lists), ', ')
              ${alerts ? `, (SELECT count(*) FROM ${alerts.sql} a WHERE a.client_ip = h.client_ip AND ${within('window_start', period, 'a')})` : ''}
         FROM ${threats.sql} h WHERE ${within('timestamp', period, 'h')} GROUP BY h.client_ip ORDER BY 2 DESC, 1 LIMIT ${TOP}`,
    ),
  );
  sections.push({
    id: 'attackers',
    title: 'Top threat sources',
    note: `Addresses with the most threatening requests${alerts ? `, and the alerts raised for them (${alerts.name}, at most one per address per window)` : ''}.`,
    table: byClient,
    chart: chartOf(byClient, 'bar', 0, [1]),
  });
}

/** Dead letters, from the JSON-lines files the pipelines route their `.dead_letter` ports to. */
async function deadLetterSection(files: readonly DeadLetterFile[], period: Period): Promise<Section> {
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
  return {
    id: 'dead-letters',
    title: 'Dead letters',
    note:
      read.length === 0
        ? 'No dead letters: none of the pipelines\u2019 dead-letter files exists.'
        : `Records set aside with a reason, by kind of reason, from ${read.join(', ')} (time of rejection).`,
    table: data,
    ...(sorted.length > 0 ? { chart: chartOf(data, 'bar', 0, [1]) } : {}),
  };
}
