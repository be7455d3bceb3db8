/**
 * The stack's Prometheus configuration and alert rules, checked by promtool (Debian package `prometheus`):
 * the configuration and rules load, and every alert passes its unit tests (alerts.test.yml: each fires when it
 * should and stays quiet when it should not). The metric names the alerts and dashboards use are the ones etl
 * exports (engine/telemetry/README.md and the metrics contract).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { dashboards, PROMETHEUS_DIR, promtoolPath, queryPanels, readYaml } from './files.ts';
import { ETL_METRIC_NAMES } from './metric-names.ts';

const run = promisify(execFile);

async function promtool(...args: string[]): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout, stderr } = await run(promtoolPath(), args, { cwd: PROMETHEUS_DIR });
    return { ok: true, output: stdout + stderr };
  } catch (error) {
    const failure = error as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${failure.stdout ?? ''}${failure.stderr ?? ''}` || failure.message };
  }
}

interface RuleFile {
  groups: Array<{ rules: Array<{ alert?: string; expr: string }> }>;
}

const rules = (readYaml(join(PROMETHEUS_DIR, 'alerts.yml')) as RuleFile).groups.flatMap((group) => group.rules);

describe('Prometheus configuration', () => {
  it('passes promtool check config (which loads the rule files it names)', async () => {
    const result = await promtool('check', 'config', 'prometheus.yml');
    expect(result.output).toContain('SUCCESS: 1 rule files found');
    expect(result.ok, result.output).toBe(true);
  });

  it('passes promtool check rules', async () => {
    const result = await promtool('check', 'rules', 'alerts.yml');
    expect(result.ok, result.output).toBe(true);
  });

  it('has the four alerts the stack promises, plus the stale checkpoint', () => {
    expect(rules.map((rule) => rule.alert).sort()).toEqual([
      'EtlBacklogGrowing',
      'EtlCheckpointStale',
      'EtlDeadLetterRatioHigh',
      'EtlFreshnessOver5s',
      'EtlPipelineDown',
    ]);
  });

  it('passes the unit tests of every alert rule (promtool test rules)', async () => {
    const result = await promtool('test', 'rules', 'alerts.test.yml');
    expect(result.ok, result.output).toBe(true);
    expect(result.output).toContain('SUCCESS');
  });

  it('has unit tests that fire each alert and tests where it stays quiet', () => {
    const tests = readYaml(join(PROMETHEUS_DIR, 'alerts.test.yml')) as {
      tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }>;
    };
    const cases = tests.tests.flatMap((test) => test.alert_rule_test);
    for (const rule of rules) {
      const mine = cases.filter((c) => c.alertname === rule.alert);
      expect(
        mine.some((c) => c.exp_alerts.length > 0),
        `${rule.alert} fires in a test`,
      ).toBe(true);
      expect(
        mine.some((c) => c.exp_alerts.length === 0),
        `${rule.alert} stays quiet in a test`,
      ).toBe(true);
    }
  });

  it('fails its unit tests when a threshold is changed (the tests can fail)', async () => {
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'etl-alerts-'));
    try {
      const alerts = readFileSync(join(PROMETHEUS_DIR, 'alerts.yml'), 'utf8');
      const loosened = alerts.replace('> 0.005', '> 0.02');
      expect(loosened).not.toBe(alerts);
      await writeFile(join(dir, 'alerts.yml'), loosened);
      await writeFile(join(dir, 'alerts.test.yml'), readFileSync(join(PROMETHEUS_DIR, 'alerts.test.yml')));
      const result = await promtool('test', 'rules', join(dir, 'alerts.test.yml'));
      expect(result.ok).toBe(false);
      expect(result.output).toContain('EtlDeadLetterRatioHigh');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('metric names in alerts and dashboards', () => {
  const used = new Map<string, string>();
  const collect = (where: string, expr: string) => {
    for (const match of expr.matchAll(/\b(etl_[a-z0-9_]+|process_[a-z0-9_]+|nodejs_[a-z0-9_]+)\b/g)) {
      const name = (match[1] as string).replace(/_(bucket|sum|count)$/, '');
      if (!used.has(name)) used.set(name, where);
    }
  };
  for (const rule of rules) collect(`alert ${rule.alert}`, rule.expr);
  for (const { file, dashboard } of dashboards()) {
    for (const panel of queryPanels(dashboard)) {
      for (const target of panel.targets ?? []) collect(`${file}: ${panel.title}`, target.expr ?? '');
    }
    for (const variable of dashboard.templating.list) collect(`${file}: $${variable.name}`, variable.definition ?? '');
  }

  it('are all metrics etl exports', () => {
    expect(used.size).toBeGreaterThan(20);
    const unknown = [...used]
      .filter(([name]) => !ETL_METRIC_NAMES.has(name))
      .map(([name, where]) => `${name} (${where})`);
    expect(unknown).toEqual([]);
  });
});
