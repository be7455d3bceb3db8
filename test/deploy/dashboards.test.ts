/**
 * The Grafana provisioning and dashboards, checked against their structure without Grafana (no image here):
 * panel types Grafana ships, datasources that the provisioning defines (by uid and type), non-empty targets,
 * a grid of 24 columns, unique ids, variables that are defined. Their queries run for real in stack.test.ts.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEPLOY, dashboards, queryPanels, readYaml } from './files.ts';

const provisioned = readYaml(join(DEPLOY, 'grafana/provisioning/datasources/datasources.yml')) as {
  datasources: Array<{ name: string; uid: string; type: string; url: string; jsonData?: Record<string, unknown> }>;
};
const providers = readYaml(join(DEPLOY, 'grafana/provisioning/dashboards/dashboards.yml')) as {
  providers: Array<{ type: string; options: { path: string } }>;
};

// Panel types built into Grafana 11 that these dashboards may use.
const PANEL_TYPES = new Set(['row', 'timeseries', 'stat', 'table', 'barchart', 'piechart', 'bargauge', 'gauge']);
// Grafana's built-in variables, and the ones a dashboard defines itself.
const BUILT_IN = new Set(['__rate_interval', '__interval', '__range', '__timeFilter', '__timeGroupAlias', '__all']);

describe('Grafana provisioning', () => {
  it('defines the Prometheus, PostgreSQL and Jaeger data sources with unique uids', () => {
    const byUid = new Map(provisioned.datasources.map((ds) => [ds.uid, ds]));
    expect(byUid.size).toBe(provisioned.datasources.length);
    expect(byUid.get('prometheus')).toMatchObject({ type: 'prometheus', url: 'http://prometheus:9090' });
    expect(byUid.get('etl-postgres')).toMatchObject({
      type: 'grafana-postgresql-datasource',
      url: 'postgres:5432',
      jsonData: { database: 'etl' },
    });
    expect(byUid.get('jaeger')).toMatchObject({ type: 'jaeger', url: 'http://jaeger:16686' });
  });

  it('loads dashboards from the folder docker-compose.yml mounts them on', () => {
    const compose = readYaml(join(DEPLOY, '../docker-compose.yml')) as {
      services: { grafana: { volumes: string[] } };
    };
    const mount = compose.services.grafana.volumes.find((v) => v.startsWith('./deploy/grafana/dashboards:'));
    expect(mount?.split(':')[1]).toBe(providers.providers[0]?.options.path);
  });
});

describe.each(dashboards())('dashboard $file', ({ dashboard }) => {
  const panels = queryPanels(dashboard);
  const uids = new Map(provisioned.datasources.map((ds) => [ds.uid, ds.type]));

  it('has a uid, a title and query panels of known types', () => {
    expect(dashboard.uid).toMatch(/^[a-z0-9-]{1,40}$/);
    expect(dashboard.title).not.toBe('');
    expect(panels.length).toBeGreaterThan(5);
    for (const panel of [...dashboard.panels, ...panels]) expect(PANEL_TYPES, panel.title).toContain(panel.type);
  });

  it('gives every panel a unique id and a place on the 24-column grid', () => {
    const all = dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);
    expect(new Set(all.map((panel) => panel.id)).size).toBe(all.length);
    for (const { title, gridPos } of all) {
      expect(gridPos.w, title).toBeGreaterThan(0);
      expect(gridPos.x + gridPos.w, title).toBeLessThanOrEqual(24);
      expect(gridPos.h, title).toBeGreaterThan(0);
    }
  });

  it('queries provisioned data sources with non-empty targets', () => {
    for (const panel of panels) {
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      const refIds = new Set<string>();
      for (const target of panel.targets ?? []) {
        const datasource = target.datasource ?? panel.datasource;
        expect(datasource, panel.title).toBeDefined();
        expect(uids.get(datasource?.uid ?? ''), `${panel.title}: uid ${datasource?.uid}`).toBe(datasource?.type);
        const query = datasource?.type === 'prometheus' ? target.expr : target.rawSql;
        expect(query?.trim(), panel.title).toBeTruthy();
        if (datasource?.type !== 'prometheus') expect(['table', 'time_series'], panel.title).toContain(target.format);
        refIds.add(target.refId);
      }
      expect(refIds.size, `${panel.title}: refIds`).toBe(panel.targets?.length);
    }
  });

  it('uses only variables it defines or Grafana provides', () => {
    const defined = new Set([...BUILT_IN, ...dashboard.templating.list.map((v) => v.name)]);
    for (const panel of panels) {
      for (const target of panel.targets ?? []) {
        for (const match of `${target.expr ?? ''} ${target.rawSql ?? ''}`.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)) {
          expect(defined, `${panel.title}: $${match[1]}`).toContain(match[1]);
        }
      }
    }
  });
});
