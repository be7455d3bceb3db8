/** The compose stack's files (deploy/, docker-compose.yml, Dockerfile), read as the tools they are meant for would. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const DEPLOY = join(ROOT, 'deploy');
export const PROMETHEUS_DIR = join(DEPLOY, 'prometheus');
export const DASHBOARD_DIR = join(DEPLOY, 'grafana', 'dashboards');

export function readYaml(path: string): unknown {
  return parse(readFileSync(path, 'utf8'));
}

/** promtool from the Debian package `prometheus` (.ci/run installs it). */
export function promtoolPath(): string {
  const found = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((path) => existsSync(path));
  if (found === undefined) throw new Error('promtool not found: apt-get install prometheus (.ci/run does)');
  return found;
}

export interface Target {
  readonly refId: string;
  readonly datasource?: { readonly type: string; readonly uid: string };
  readonly expr?: string;
  readonly rawSql?: string;
  readonly format?: string;
}

export interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly datasource?: { readonly type: string; readonly uid: string };
  readonly gridPos: { readonly h: number; readonly w: number; readonly x: number; readonly y: number };
  readonly targets?: Target[];
  readonly panels?: Panel[];
}

export interface Dashboard {
  readonly uid: string;
  readonly title: string;
  readonly panels: Panel[];
  readonly templating: {
    readonly list: Array<{ readonly name: string; readonly type: string; readonly definition?: string }>;
  };
}

export function dashboards(): Array<{ file: string; dashboard: Dashboard }> {
  return readdirSync(DASHBOARD_DIR)
    .filter((file) => file.endsWith('.json'))
    .sort()
    .map((file) => ({ file, dashboard: JSON.parse(readFileSync(join(DASHBOARD_DIR, file), 'utf8')) as Dashboard }));
}

/** Every panel that queries (rows' nested panels included). */
export function queryPanels(dashboard: Dashboard): Panel[] {
  return dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]).filter((panel) => panel.type !== 'row');
}
