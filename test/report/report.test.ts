/**
 * `etl report` end to end: pipelines/traffic.yaml loads generated logs (one request carries markup in its path,
 * referrer and agent) into a fresh PostgreSQL database, `etl report` writes the page, and headless Chromium
 * opens it with the network off. The page must render without console errors or requests, every chart must
 * hold the numbers of the table beside it, those numbers must be the database's, and the markup must show as
 * text. ETL_REPORT_SCREENSHOT=docs/report.png keeps a screenshot of the combined report (traffic + threats + performance).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPipeline, freshDatabase, type TestDatabase } from '../pipelines/support.ts';
import { etl } from '../support/cli.ts';
import { prng } from '../support/random.ts';

const PIPELINE = resolve(import.meta.dirname, '../../pipelines/traffic.yaml');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const LINES = 1500;
/** The hostile request and the probes, after the ordinary lines. */
const EXTRA = 6;
const START = Date.parse('2026-12-01T00:00:00Z');
const HOSTILE_PATH = '/<script>window.__xss=1</script>';
const HOSTILE_REFERRER = 'https://evil.example/"><img src=x onerror="window.__xss=2">';
const HOSTILE_AGENT = 'Mozilla/5.0 <svg onload="window.__xss=3"> (X11; Linux x86_64) Firefox/121.0';

const PREFIXES = ['8.8.8.', '81.2.69.', '185.220.101.', '133.242.0.', '200.160.2.', '193.0.6.'];
const AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0',
  'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
];
const PATHS = ['/', '/cart', '/login', '/products/1', '/products/2', '/search', '/api/items', '/about'];
const STATUSES = [200, 200, 200, 200, 200, 200, 301, 304, 404, 500];

function stamp(time: number): string {
  const d = new Date(time);
  const month = d.toLocaleString('en', { month: 'short', timeZone: 'UTC' });
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(d.getUTCDate())}/${month}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}

/** nginx lines with `$request_time` last, so that the report has latencies too. */
function generate(): string[] {
  const random = prng(15);
  const lines: string[] = [];
  let time = START;
  for (let i = 0; i < LINES; i++) {
    // About two days, busier in the afternoon than at night (UTC), so that the chart over time has a shape.
    const busy = 0.3 + Math.sin((Math.PI * new Date(time).getUTCHours()) / 24);
    time += Math.floor((random() * 200_000) / busy);
    const ip = `${PREFIXES[Math.floor(random() * PREFIXES.length)]}${1 + Math.floor(random() * 20)}`;
    const path = PATHS[Math.floor(random() ** 2 * PATHS.length)] as string;
    const status = STATUSES[Math.floor(random() * STATUSES.length)] as number;
    const agent = AGENTS[Math.floor(random() * AGENTS.length)] as string;
    const referrer = random() < 0.3 ? '-' : `https://ref${Math.floor(random() * 5)}.example/`;
    const seconds = (0.005 + random() * 0.4).toFixed(3);
    lines.push(
      `${ip} - - [${stamp(time)}] "GET ${path} HTTP/1.1" ${status} ${100 + Math.floor(random() * 20_000)} "${referrer}" "${agent}" ${seconds}`,
    );
  }
  // Probes that the threats pipeline's signatures know, from two addresses.
  const probes = ['/.git/config', '/.env', '/wp-login.php', '/phpmyadmin/index.php', '/.git/HEAD'];
  probes.forEach((path, i) => {
    const ip = i % 2 === 0 ? '185.220.101.66' : '200.160.2.77';
    lines.push(`${ip} - - [${stamp(time + 100 * (i + 1))}] "GET ${path} HTTP/1.1" 404 150 "-" "curl/8.5.0" 0.001`);
  });
  lines.push(
    `8.8.8.99 - - [${stamp(time + 1000)}] "GET ${HOSTILE_PATH} HTTP/1.1" 404 12 "${HOSTILE_REFERRER}" "${HOSTILE_AGENT}" 0.002`,
  );
  return lines;
}

interface Rendered {
  /** For each canvas: its labels and datasets as Chart.js holds them, and the table beside it. */
  charts: {
    section: string;
    labels: string[];
    datasets: { label: string; data: number[]; column: number }[];
    labelColumn: number;
    table: { text: string; value: string | null }[][];
  }[];
}

interface ChartJs {
  getChart(canvas: unknown): { data: { labels: unknown[]; datasets: { label: string; data: number[] }[] } };
}

async function readCharts(page: Page): Promise<Rendered['charts']> {
  return page.$$eval('canvas[data-chart]', (canvases) => {
    const doc = canvases[0]?.ownerDocument;
    const specs = JSON.parse(doc?.getElementById('report-data')?.textContent ?? '[]') as {
      labelColumn: number;
      series: { column: number }[];
    }[];
    const { Chart } = globalThis as unknown as { Chart: ChartJs };
    return canvases.map((canvas) => {
      const spec = specs[Number(canvas.getAttribute('data-chart'))];
      const chart = Chart.getChart(canvas);
      const section = canvas.closest('section');
      const table = [...(section?.querySelectorAll('tbody tr') ?? [])].map((tr) =>
        [...tr.querySelectorAll('td')].map((td) => ({
          text: td.textContent ?? '',
          value: td.getAttribute('data-value'),
        })),
      );
      return {
        section: section?.id ?? '',
        labels: chart.data.labels.map(String),
        datasets: chart.data.datasets.map((d, i) => ({
          label: d.label,
          data: d.data,
          column: spec?.series[i]?.column ?? -1,
        })),
        labelColumn: spec?.labelColumn ?? -1,
        table,
      };
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'etl-report-'));
const out = join(dir, 'report.html');
let db: TestDatabase;
let env: NodeJS.ProcessEnv;
let browser: Browser;
let page: Page;
const problems: string[] = [];
const requests: string[] = [];

beforeAll(async () => {
  writeFileSync(join(dir, 'access.log'), `${generate().join('\n')}\n`);
  db = await freshDatabase('report');
  env = { ACCESS_LOG_GLOB: join(dir, 'access.log'), DATABASE_URL: db.url, ETL_DATA_DIR: join(dir, '.etl') };
  const run = await applyPipeline(PIPELINE, env);
  expect(run.code, run.stdout + run.stderr).toBe(0);
  const report = await etl(['report', '--pipeline', PIPELINE, '--out', out], { env });
  expect(report.code, report.stdout + report.stderr).toBe(0);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const context = await browser.newContext({ offline: true, viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(pathToFileURL(out).href);
  await page.waitForSelector('html[data-rendered="true"]');
});
afterAll(async () => {
  await browser?.close();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe('etl report', () => {
  it('renders offline, without console errors and without fetching anything', () => {
    expect(problems).toEqual([]);
    expect(requests).toEqual([pathToFileURL(out).href]);
  });

  it('draws every chart from the numbers of the table beside it', async () => {
    const charts = await readCharts(page);
    expect(charts.map((c) => c.section)).toEqual(
      expect.arrayContaining([
        'requests-over-time',
        'status-classes',
        'top-paths',
        'not-found',
        'countries',
        'browsers',
        'devices',
        'bots',
      ]),
    );
    for (const chart of charts) {
      expect(chart.table.length, chart.section).toBeGreaterThan(0);
      expect(chart.labels, chart.section).toEqual(chart.table.map((row) => row[chart.labelColumn]?.text));
      for (const dataset of chart.datasets) {
        const column = chart.table.map((row) => Number(row[dataset.column]?.value));
        expect({ section: chart.section, series: dataset.label, data: dataset.data }).toEqual({
          section: chart.section,
          series: dataset.label,
          data: column,
        });
      }
    }
  });

  it('holds the numbers of the database', async () => {
    const charts = new Map((await readCharts(page)).map((c) => [c.section, c]));
    const series = (section: string, index = 0) => {
      const chart = charts.get(section);
      return new Map(chart?.labels.map((label, i) => [label, chart.datasets[index]?.data[i]]));
    };
    const [totals] = await db.query<{ requests: number; visitors: number }>(
      'SELECT count(*)::int AS requests, count(DISTINCT client_ip)::int AS visitors FROM traffic_hits',
    );
    expect(totals?.requests).toBe(LINES + EXTRA);
    const shown = await page.$$eval('.total .value[data-value]', (els) =>
      els.map((e) => Number(e.getAttribute('data-value'))),
    );
    expect(shown.slice(0, 2)).toEqual([totals?.requests, totals?.visitors]);

    const hourly = await db.query<{ hour: string; n: number }>(
      `SELECT to_char(date_trunc('hour', "timestamp") AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS hour, count(*)::int AS n
         FROM traffic_hits GROUP BY 1 ORDER BY 1`,
    );
    expect(series('requests-over-time')).toEqual(new Map(hourly.map((r) => [r.hour, r.n])));

    const status = await db.query<{ class: string; n: number }>(
      `SELECT (status / 100)::text || 'xx' AS class, count(*)::int AS n FROM traffic_hits GROUP BY 1`,
    );
    expect(series('status-classes')).toEqual(new Map(status.map((r) => [r.class, r.n])));

    const countries = await db.query<{ country: string; n: number }>(
      `SELECT coalesce(geo_country, 'unknown') AS country, count(*)::int AS n FROM traffic_hits GROUP BY 1`,
    );
    expect(series('countries')).toEqual(new Map(countries.map((r) => [r.country, r.n])));

    const notFound = await db.query<{ path: string; n: number }>(
      'SELECT path, count(*)::int AS n FROM traffic_hits WHERE status = 404 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 15',
    );
    expect(series('not-found')).toEqual(new Map(notFound.map((r) => [r.path, r.n])));

    const bots = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM traffic_hits WHERE ua_is_bot');
    expect([...series('bots').values()].reduce((a, b) => (a ?? 0) + (b ?? 0), 0)).toBe(bots[0]?.n);
  });

  it('shows markup from the logs as text, never as markup', async () => {
    expect(await page.evaluate(() => (globalThis as { __xss?: number }).__xss)).toBeUndefined();
    expect(await page.locator('script').count()).toBe(3);
    expect(await page.locator('img, svg').count()).toBe(0);
    const cells = await page.$$eval('td', (tds) => tds.map((td) => td.textContent));
    expect(cells).toContain(HOSTILE_PATH);
    expect(cells).toContain(HOSTILE_REFERRER);
    const html = readFileSync(out, 'utf8');
    expect(html).not.toContain('<script>window.__xss');
    expect(html).not.toContain('<img src=x');
  });

  it('names the sections a traffic-only report leaves out, and refuses a bad period', async () => {
    const missing = await page.locator('#not-in-report li').allTextContents();
    expect(missing.join('\n')).toMatch(/Endpoint latency.*performance\.yaml/);
    expect(missing.join('\n')).toMatch(/Threats.*threats\.yaml/);
    // The threats pipeline has not run yet: its tables are named as missing, the traffic sections still come.
    const early = join(dir, 'early.html');
    const threats = resolve(import.meta.dirname, '../../pipelines/threats.yaml');
    const run = await etl(['report', '--pipeline', PIPELINE, '--pipeline', threats, '--out', early], { env });
    expect(run.code, run.stderr).toBe(0);
    const html = readFileSync(early, 'utf8');
    expect(html).toMatch(/<strong>Tables not created yet<\/strong>: [^<]*threats \(threats\)/);
    expect(html).toContain('id="requests-over-time"');
    const bad = await etl(['report', '--pipeline', PIPELINE, '--from', 'yesterday-ish', '--out', join(dir, 'x.html')], {
      env,
    });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--from "yesterday-ish" is not a date');
    expect(existsSync(join(dir, 'x.html'))).toBe(false);
  });

  it('reports only the period asked for', async () => {
    const from = '2026-12-01T02:00:00Z';
    const to = '2026-12-01T03:00:00Z';
    const file = join(dir, 'hour.html');
    const run = await etl(['report', '--pipeline', PIPELINE, '--from', from, '--to', to, '--out', file], { env });
    expect(run.code, run.stderr).toBe(0);
    const [hour] = await db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM traffic_hits WHERE "timestamp" >= $1 AND "timestamp" < $2',
      [from, to],
    );
    const html = readFileSync(file, 'utf8');
    expect(html).toMatch(new RegExp(`<span class="label">Requests</span><span class="value" data-value="${hour?.n}">`));
  });
});

describe('etl report of traffic, threats and performance together', () => {
  const combined = join(dir, 'combined.html');
  const pipelines = ['traffic', 'threats', 'performance'].map((name) =>
    resolve(import.meta.dirname, `../../pipelines/${name}.yaml`),
  );
  let combinedPage: Page;

  beforeAll(async () => {
    for (const pipeline of pipelines.slice(1)) {
      const run = await applyPipeline(pipeline, env);
      expect(run.code, run.stdout + run.stderr).toBe(0);
    }
    const args = pipelines.flatMap((p) => ['--pipeline', p]);
    const run = await etl(['report', ...args, '--out', combined], { env });
    expect(run.code, run.stdout + run.stderr).toBe(0);
    combinedPage = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    combinedPage.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    combinedPage.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
    });
    await combinedPage.goto(pathToFileURL(combined).href);
    await combinedPage.waitForSelector('html[data-rendered="true"]');
    const shot = process.env.ETL_REPORT_SCREENSHOT;
    // The header and the first sections: what a reader sees first.
    if (shot)
      await combinedPage.screenshot({
        path: resolve(shot),
        fullPage: true,
        clip: { x: 0, y: 0, width: 1280, height: 1900 },
      });
  });

  it('has the threat and endpoint sections, with the numbers of their tables', async () => {
    expect(problems).toEqual([]);
    expect(await combinedPage.locator('#not-in-report').count()).toBe(0);
    const charts = new Map((await readCharts(combinedPage)).map((c) => [c.section, c]));
    const rules = await db.query<{ rule: string; n: number }>(
      'SELECT threat_rules AS rule, count(*)::int AS n FROM threats GROUP BY 1',
    );
    expect(rules.length).toBeGreaterThan(0);
    const threats = charts.get('threats');
    expect(new Map(threats?.labels.map((l, i) => [l, threats.datasets[0]?.data[i]]))).toEqual(
      new Map(rules.map((r) => [r.rule, r.n])),
    );
    const sources = charts.get('attackers');
    expect(sources?.labels).toEqual(expect.arrayContaining(['185.220.101.66', '200.160.2.77']));
    const endpoints = await db.query<{ endpoint: string; p95: number }>(
      'SELECT endpoint, max(latency_p95_ms) AS p95 FROM endpoint_hour GROUP BY 1 ORDER BY sum(requests) DESC, 1 LIMIT 15',
    );
    const drawn = charts.get('endpoints');
    expect(drawn?.labels).toEqual(endpoints.map((e) => e.endpoint));
    expect(drawn?.datasets[0]?.data).toEqual(endpoints.map((e) => e.p95));
  });
});
