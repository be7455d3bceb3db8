/**
 * Every operator the engine knows. Adding one: a folder under operators/<kind>/<type>/ and one line here.
 */
import type { OperatorDefinition, ResourceDefinition } from '../engine/operator.ts';
import redisResource from './resources/redis/index.ts';
import alertSink from './sinks/alert/index.ts';
import blackholeSink from './sinks/blackhole/index.ts';
import elasticsearchSink from './sinks/elasticsearch/index.ts';
import fileSink from './sinks/file/index.ts';
import postgresSink from './sinks/postgres/index.ts';
import redisSink from './sinks/redis/index.ts';
import natsSink from './sinks/nats/index.ts';
import stdoutSink from './sinks/stdout/index.ts';
import fileSource from './sources/file/index.ts';
import generatorSource from './sources/generator/index.ts';
import httpSource from './sources/http/index.ts';
import stdinSource from './sources/stdin/index.ts';
import natsSource from './sources/nats/index.ts';
import sftpSource from './sources/sftp/index.ts';
import aggregateTransform from './transforms/aggregate/index.ts';
import anomaliesTransform from './transforms/anomalies/index.ts';
import anonymizeTransform from './transforms/anonymize/index.ts';
import dedupeTransform from './transforms/dedupe/index.ts';
import geoipTransform from './transforms/geoip/index.ts';
import parseTransform from './transforms/parse/index.ts';
import userAgentTransform from './transforms/user_agent/index.ts';
import normalizeTransform from './transforms/normalize/index.ts';
import validateTransform from './transforms/validate/index.ts';
import sessionizeTransform from './transforms/sessionize/index.ts';
import threatIntelTransform from './transforms/threat_intel/index.ts';

export const registry: readonly OperatorDefinition[] = [
  fileSource,
  stdinSource,
  generatorSource,
  natsSource,
  httpSource,
  sftpSource,
  parseTransform,
  geoipTransform,
  userAgentTransform,
  validateTransform,
  sessionizeTransform,
  anomaliesTransform,
  threatIntelTransform,
  anonymizeTransform,
  dedupeTransform,
  normalizeTransform,
  aggregateTransform,
  fileSink,
  stdoutSink,
  blackholeSink,
  postgresSink,
  redisSink,
  alertSink,
  elasticsearchSink,
  natsSink,
];

export function findOperator(kind: OperatorDefinition['kind'], type: string): OperatorDefinition | undefined {
  return registry.find((def) => def.kind === kind && def.type === type);
}

/** Shared resources pipelines can declare under `spec.resources`. */
export const resources: readonly ResourceDefinition[] = [redisResource as ResourceDefinition];
