/**
 * Scraping an `etl` process's `/metrics` in tests: parsed with a real parser of the text format
 * (parse-prometheus-text-format), and checked whole by Prometheus's own (`promtool check metrics`).
 */
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import parsePrometheusTextFormat, { type PromFamily, type PromSample } from 'parse-prometheus-text-format';

export type { PromFamily, PromSample };

/** A port nobody listens on right now, on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** The exposition text at `http://127.0.0.1:port/metrics`, or undefined while nothing answers there. */
export async function scrapeText(port: number): Promise<string | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/metrics`);
    return response.ok ? await response.text() : undefined;
  } catch {
    return undefined;
  }
}

const HISTOGRAM_TYPE = /^# TYPE (\S+) histogram$/;

/**
 * The families of `text`. The parser folds the series of a labelled histogram into one and drops their labels,
 * so histograms are read as what they are made of: untyped `_bucket`, `_sum` and `_count` series, labels kept
 * (their TYPE and HELP lines are left out; `promtoolCheck` reads them as histograms).
 */
export function parseExposition(text: string): PromFamily[] {
  const lines = text.split('\n');
  const histograms = new Set<string>();
  for (const line of lines) {
    const match = HISTOGRAM_TYPE.exec(line);
    if (match) histograms.add(match[1] as string);
  }
  const kept = lines.filter((line) => {
    if (!line.startsWith('# ')) return true;
    const name = line.split(' ', 3)[2];
    return name === undefined || !histograms.has(name);
  });
  return parsePrometheusTextFormat(kept.join('\n'));
}

/**
 * Runs `promtool check metrics` (Debian package `prometheus`) on `text`: what it finds wrong, parse errors and lint
 * problems, but the lint of prom-client's own default metrics (`nodejs_active_handles_total` is a gauge); [] when none.
 */
export function promtoolProblems(text: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = execFile('promtool', ['check', 'metrics'], (error, stdout, stderr) => {
      if (error && error.code === 'ENOENT') {
        reject(new Error('promtool is missing: apt-get install prometheus'));
        return;
      }
      const lines = `${stdout}${stderr}`.split('\n').filter((line) => line.trim() !== '');
      resolve(lines.filter((line) => !/^nodejs_\S+ /.test(line)));
    });
    child.stdin?.end(text);
  });
}

/** The samples of family `name` whose labels include `labels`. */
export function samples(
  families: readonly PromFamily[],
  name: string,
  labels: Record<string, string> = {},
): PromSample[] {
  // Untyped series of one name come as several families when other series are interleaved with them.
  return families
    .filter((f) => f.name === name)
    .flatMap((f) => f.metrics)
    .filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
}

/** The value of the one sample of `name` with `labels`; undefined when there is none. */
export function seriesValue(
  families: readonly PromFamily[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const found = samples(families, name, labels);
  if (found.length > 1) throw new Error(`${found.length} series of ${name} match ${JSON.stringify(labels)}`);
  const sample = found[0];
  return sample === undefined ? undefined : Number(sample.value);
}
