/**
 * A report as one self-contained HTML file: styles, Chart.js and the drawing script inlined, the chart data as
 * JSON in the page. Every value from the database or a log is escaped: log data is attacker-controlled.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import {
  type Cell,
  type Chart,
  type DataTable,
  type Report,
  type Section,
  timeLabel,
  type ValueKind,
} from './model.ts';

const count = new Intl.NumberFormat('en-US');
const decimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** Text for HTML content and for quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON that can sit inside <script>: no `<`, `>`, `&` or line separators that could end or break it. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

export function formatValue(kind: ValueKind, value: Cell): string {
  if (value === null) return '\u2014';
  if (kind === 'time') return timeLabel(value);
  if (typeof value !== 'number') return String(value);
  switch (kind) {
    case 'bytes': {
      let v = value;
      let i = 0;
      while (Math.abs(v) >= 1024 && i < UNITS.length - 1) {
        v /= 1024;
        i++;
      }
      return i === 0 ? `${v} B` : `${decimal.format(v)} ${UNITS[i]}`;
    }
    case 'ms':
      return `${decimal.format(value)} ms`;
    case 'percent':
      return `${decimal.format(value)} %`;
    case 'count':
      return count.format(value);
    default:
      return String(value);
  }
}

async function chartLibrary(): Promise<string> {
  const require = createRequire(import.meta.url);
  // The package exports no path to its browser bundle: it sits beside the CommonJS entry, in dist/.
  const source = await readFile(join(dirname(require.resolve('chart.js')), 'chart.umd.min.js'), 'utf8');
  // No source map to fetch; no `</script` to end the element early.
  return source.replace(/\n\/\/# sourceMappingURL=.*$/, '').replaceAll('</script', '<\\/script');
}

function renderTable(table: DataTable): string {
  const head = table.columns
    .map((c) => `<th class="${c.kind === 'text' || c.kind === 'time' ? 'l' : 'r'}">${escapeHtml(c.label)}</th>`)
    .join('');
  const body = table.rows
    .map((row) => {
      const cells = row.map((value, i) => {
        const kind = table.columns[i]?.kind ?? 'text';
        const numeric = typeof value === 'number' && kind !== 'text' && kind !== 'time';
        const attr = numeric ? ` class="r" data-value="${escapeHtml(String(value))}"` : ' class="l"';
        const shown = formatValue(kind, value);
        const title = kind === 'text' && shown.length > 60 ? ` title="${escapeHtml(shown)}"` : '';
        return `<td${attr}${title}>${escapeHtml(shown)}</td>`;
      });
      return `<tr>${cells.join('')}</tr>`;
    })
    .join('\n');
  const empty =
    table.rows.length === 0
      ? `<tr><td colspan="${table.columns.length}" class="l">No rows in this period.</td></tr>`
      : '';
  return `<div class="table"><table><thead><tr>${head}</tr></thead><tbody>${body}${empty}</tbody></table></div>`;
}

function renderSection(section: Section, chartIndex: number | undefined): string {
  const chart =
    chartIndex === undefined
      ? ''
      : `<div class="chart chart-${escapeHtml(section.chart?.type ?? '')}"><canvas data-chart="${chartIndex}" role="img" aria-label="${escapeHtml(section.title)}"></canvas></div>`;
  return `<section id="${escapeHtml(section.id)}" class="card">
<h2>${escapeHtml(section.title)}</h2>
<p class="note">${escapeHtml(section.note)}</p>
<div class="body${chart ? '' : ' single'}">${chart}${renderTable(section.table)}</div>
</section>`;
}

export async function renderReport(report: Report): Promise<string> {
  const charts: Chart[] = [];
  const sections = report.sections.map((section) => {
    if (!section.chart || section.table.rows.length === 0) return renderSection(section, undefined);
    charts.push(section.chart);
    return renderSection(section, charts.length - 1);
  });
  const period =
    report.period.from && report.period.to
      ? `${timeLabel(report.period.from)} \u2013 ${timeLabel(report.period.to)} UTC`
      : 'no data in this period';
  const totals = [
    ...report.totals.map(
      (t) =>
        `<div class="total"><span class="label">${escapeHtml(t.label)}</span><span class="value" data-value="${escapeHtml(String(t.value))}">${escapeHtml(formatValue(t.kind, t.value))}</span></div>`,
    ),
    `<div class="total"><span class="label">Period</span><span class="value period">${escapeHtml(period)}</span></div>`,
  ].join('\n');
  const missing =
    report.missing.length === 0
      ? ''
      : `<section class="card missing" id="not-in-report"><h2>Not in this report</h2><ul>${report.missing
          .map((m) => `<li><strong>${escapeHtml(m.title)}</strong>: ${escapeHtml(m.reason)}</li>`)
          .join('')}</ul></section>`;
  const page = await readFile(new URL('./page.js', import.meta.url), 'utf8');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>${escapeHtml(report.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>${escapeHtml(report.title)}</h1>
<p class="meta">Generated ${escapeHtml(timeLabel(report.generatedAt))} UTC by <code>etl report</code> from ${escapeHtml(report.pipelines.join(', '))}</p>
<nav>${report.sections.map((s) => `<a href="#${escapeHtml(s.id)}">${escapeHtml(s.title)}</a>`).join('')}</nav>
<div class="totals">${totals}</div>
</header>
<main>
${sections.join('\n')}
${missing}
</main>
<script type="application/json" id="report-data">${scriptJson(charts)}</script>
<script>${await chartLibrary()}</script>
<script>${page.replaceAll('</script', '<\\/script')}</script>
</body>
</html>
`;
}

const STYLE = `
:root { color-scheme: light dark; --font: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  --bg: #f6f7f9; --card: #ffffff; --fg: #1d2430; --muted: #5b6575; --grid: #e3e6eb; --accent: #2f6fdf;
  --c1: #2f6fdf; --c2: #1aa179; --c3: #e0892b; --c4: #d64545; --c5: #8a5cd6; --c6: #2aa6c2; --c7: #b8a21c; --c8: #7b8794; }
@media (prefers-color-scheme: dark) { :root { --bg: #12151b; --card: #1b2029; --fg: #e6e9ef; --muted: #9aa4b5;
  --grid: #2c3340; --accent: #6ea0ff; --c1: #6ea0ff; --c2: #3ccf9e; --c3: #f2a553; --c4: #f07272; --c5: #b18cf5;
  --c6: #56c8e0; --c7: #dcc84a; --c8: #a0abb9; } }
* { box-sizing: border-box; }
body { margin: 0; font-family: var(--font); background: var(--bg); color: var(--fg); font-size: 14px; line-height: 1.45; }
header { padding: 20px 28px 8px; }
h1 { font-size: 22px; margin: 0 0 4px; }
.meta { color: var(--muted); margin: 0 0 10px; }
nav { display: flex; flex-wrap: wrap; gap: 6px 14px; margin-bottom: 14px; }
nav a { color: var(--accent); text-decoration: none; font-size: 13px; }
.totals { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; }
.total { background: var(--card); border-radius: 8px; padding: 12px 16px; border-left: 4px solid var(--accent); }
.total .label { display: block; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.total .value { display: block; font-size: 24px; font-weight: 600; font-variant-numeric: tabular-nums; }
.total .value.period { font-size: 15px; font-weight: 500; padding-top: 6px; }
main { padding: 8px 28px 28px; display: grid; gap: 16px; }
.card { background: var(--card); border-radius: 8px; padding: 14px 18px; }
h2 { font-size: 16px; margin: 0 0 2px; }
.note { color: var(--muted); margin: 0 0 10px; font-size: 12.5px; }
.body { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 18px; align-items: start; }
.body.single { grid-template-columns: minmax(0, 1fr); }
@media (max-width: 900px) { .body { grid-template-columns: minmax(0, 1fr); } }
.chart { position: relative; height: 300px; }
.chart-doughnut { height: 240px; }
.table { max-height: 320px; overflow: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--grid); white-space: nowrap; }
th { white-space: normal; vertical-align: bottom; }
td.l { max-width: 260px; overflow: hidden; text-overflow: ellipsis; }
th { position: sticky; top: 0; background: var(--card); color: var(--muted); font-weight: 600; font-size: 12px; }
.l { text-align: left; } .r { text-align: right; }
tbody tr:hover { background: color-mix(in srgb, var(--accent) 8%, transparent); }
.missing ul { margin: 6px 0 0; padding-left: 18px; color: var(--muted); }
code { font-size: 12px; }
`;
