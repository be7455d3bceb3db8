/**
 * The report: totals and the traffic sections from the table of raw requests (traffic_hits, or requests of the
 * threats pipeline), recognised by its columns, then the endpoint, threat and dead-letter sections (their own
 * modules). A section whose table no pipeline has is listed as missing, with the pipeline that fills it.
 */
import { deadLetterSection } from './dead-letters.ts';
import { endpointSection } from './endpoints.ts';
import { chartOf, type Missing, type Report, type Section, type Total } from './model.ts';
import { has, type Period, TOP, table, within } from './query.ts';
import { ident, rows, type Sources, type StoredTable } from './sources.ts';
import { threatSections } from './threats.ts';

export type { Period } from './query.ts';

/** The table of raw requests: the one with the most columns (the enriched one) among those that qualify. */
function rawTable(tables: readonly StoredTable[]): StoredTable | undefined {
  return tables
    .filter((t) => has(t, 'timestamp', 'client_ip', 'status', 'path') && t.ports.has('default') && t.ports.size === 1)
    .sort((a, b) => b.columns.size - a.columns.size)[0];
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
