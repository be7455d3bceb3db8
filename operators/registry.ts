/**
 * Every operator the engine knows. Adding one: a folder under operators/<kind>/<type>/ and one line here.
 *
 * A line names the operator and how to import its definition; nothing is imported until asked for, so that
 * `etl apply` of a pipeline loads the definitions (and their checks' modules) of the operators it uses only,
 * not every operator's. `operators/all.ts` loads them all, for what needs every one (schemas, tests, docs).
 */
import type { OperatorDefinition, ResourceDefinition } from '../engine/operator.ts';

type StageKind = OperatorDefinition['kind'];
import redisResource from './resources/redis/index.ts';

export interface CatalogEntry {
  readonly kind: StageKind;
  readonly type: string;
  /** The definition (index.ts), imported on first call. */
  load(): Promise<OperatorDefinition>;
}

function operator(
  kind: StageKind,
  type: string,
  importIndex: () => Promise<{ readonly default: OperatorDefinition }>,
): CatalogEntry {
  let loaded: Promise<OperatorDefinition> | undefined;
  return {
    kind,
    type,
    load() {
      loaded ??= importIndex().then(({ default: definition }) => {
        if (definition.kind !== kind || definition.type !== type) {
          throw new Error(
            `operators/registry.ts lists ${kind} ${type}, its module defines ${definition.kind} ${definition.type}`,
          );
        }
        return definition;
      });
      return loaded;
    },
  };
}

export const catalog: readonly CatalogEntry[] = [
  operator('source', 'file', () => import('./sources/file/index.ts')),
  operator('source', 'stdin', () => import('./sources/stdin/index.ts')),
  operator('source', 'generator', () => import('./sources/generator/index.ts')),
  operator('source', 'nats', () => import('./sources/nats/index.ts')),
  operator('source', 'http', () => import('./sources/http/index.ts')),
  operator('source', 'kafka', () => import('./sources/kafka/index.ts')),
  operator('source', 'sftp', () => import('./sources/sftp/index.ts')),
  operator('source', 's3', () => import('./sources/s3/index.ts')),
  operator('transform', 'parse', () => import('./transforms/parse/index.ts')),
  operator('transform', 'geoip', () => import('./transforms/geoip/index.ts')),
  operator('transform', 'user_agent', () => import('./transforms/user_agent/index.ts')),
  operator('transform', 'validate', () => import('./transforms/validate/index.ts')),
  operator('transform', 'sessionize', () => import('./transforms/sessionize/index.ts')),
  operator('transform', 'anomalies', () => import('./transforms/anomalies/index.ts')),
  operator('transform', 'threat_intel', () => import('./transforms/threat_intel/index.ts')),
  operator('transform', 'anonymize', () => import('./transforms/anonymize/index.ts')),
  operator('transform', 'dedupe', () => import('./transforms/dedupe/index.ts')),
  operator('transform', 'normalize', () => import('./transforms/normalize/index.ts')),
  operator('transform', 'aggregate', () => import('./transforms/aggregate/index.ts')),
  operator('sink', 'file', () => import('./sinks/file/index.ts')),
  operator('sink', 'stdout', () => import('./sinks/stdout/index.ts')),
  operator('sink', 'blackhole', () => import('./sinks/blackhole/index.ts')),
  operator('sink', 'postgres', () => import('./sinks/postgres/index.ts')),
  operator('sink', 'redis', () => import('./sinks/redis/index.ts')),
  operator('sink', 'alert', () => import('./sinks/alert/index.ts')),
  operator('sink', 'elasticsearch', () => import('./sinks/elasticsearch/index.ts')),
  operator('sink', 'nats', () => import('./sinks/nats/index.ts')),
  operator('sink', 's3', () => import('./sinks/s3/index.ts')),
  operator('sink', 'kafka', () => import('./sinks/kafka/index.ts')),
];

/** The definition of one operator, undefined for a kind and type nobody registered. */
export function loadOperator(kind: StageKind, type: string): Promise<OperatorDefinition | undefined> {
  const entry = catalog.find((e) => e.kind === kind && e.type === type);
  return entry ? entry.load() : Promise.resolve(undefined);
}

/** Every definition, in the order of `catalog`. */
export function loadRegistry(): Promise<readonly OperatorDefinition[]> {
  return Promise.all(catalog.map((entry) => entry.load()));
}

/** Shared resources pipelines can declare under `spec.resources`. */
export const resources: readonly ResourceDefinition[] = [redisResource as ResourceDefinition];
