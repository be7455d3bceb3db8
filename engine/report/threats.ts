/** The threat sections, from the threats pipeline's `threats` and `threat_alerts` tables. */
import { chartOf, type Missing, type Section } from './model.ts';
import { has, type Period, TOP, table, within } from './query.ts';
import { rows, type Sources } from './sources.ts';

export async function threatSections(sources: Sources, period: Period, sections: Section[], missing: Missing[]) {
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
