/**
 * The stages of one pipeline document: found in the YAML (in file order, duplicates included), checked
 * for a known `type`, cross-checked by their operator's `validate`, and finally turned into StageSpecs.
 */
import { availableParallelism } from 'node:os';
import { isMap, isScalar } from 'yaml';
import { parseInputRef } from '../graph/graph.ts';
import type { OperatorDefinition } from '../operator.ts';
import type { RecordSchema } from '../record-schema.ts';
import { DEFAULT_RETRY, type RetryPolicy } from '../retry.ts';
import {
  COMMON_STAGE_KEYS,
  DEFAULT_ON_ERROR,
  INPUT_PATTERN,
  SECTION_SYNONYMS,
  STAGE_SECTIONS,
  type StageSection,
} from '../schema/envelope.ts';
import type { DocPath, PipelineDocument } from './document.ts';
import { describeValue } from './schema-errors.ts';
import { didYouMeanSuffix, list } from './suggest.ts';
import type { InputRef, OnError, StageSpec } from './types.ts';

export interface StageEntry {
  readonly id: string;
  readonly section: StageSection;
  /** ['spec', 'sources', id] */
  readonly path: DocPath;
  /** Offset of the stage's key in the file, to tell which of two duplicates came second. */
  readonly offset: number;
  /** The stage's map after interpolation, coercion and defaults; undefined when it is not a map. */
  readonly value: Record<string, unknown> | undefined;
  /** Set once the type is known. */
  definition?: OperatorDefinition;
  /** Whether the schema pass found nothing wrong under this stage. */
  schemaValid: boolean;
}

export interface InputEntry {
  readonly ref: InputRef;
  readonly path: DocPath;
}

const INPUT_RE = new RegExp(INPUT_PATTERN);

/**
 * Every stage declared under spec.sources / operators / sinks, in file order. Stages under a section named
 * as other tools name it (`transforms:`, reported by the schema pass) are collected too, as stages of the
 * section meant, so that inputs naming them resolve; their options are not judged.
 */
export function collectStages(pipeline: PipelineDocument, data: unknown): StageEntry[] {
  const spec = asRecord(asRecord(data)?.spec);
  const entries: StageEntry[] = [];
  const sections: Array<[string, StageSection]> = [
    ...STAGE_SECTIONS.map((section): [string, StageSection] => [section.key, section]),
    ...Object.entries(SECTION_SYNONYMS).map(([key, meant]): [string, StageSection] => [
      key,
      STAGE_SECTIONS.find((s) => s.key === meant) as StageSection,
    ]),
  ];
  for (const [key, section] of sections) {
    const node = pipeline.nodeAt(['spec', key]);
    if (!isMap(node)) continue;
    const values = asRecord(spec?.[key]);
    for (const pair of node.items) {
      if (!isScalar(pair.key)) continue;
      const id = String(pair.key.value);
      entries.push({
        id,
        section,
        path: ['spec', key, id],
        offset: pair.key.range?.[0] ?? 0,
        value: asRecord(values?.[id]),
        schemaValid: key === section.key,
      });
    }
  }
  return entries.sort((a, b) => a.offset - b.offset);
}

/**
 * Resolves each stage's operator. An unknown or missing `type` is reported here, with the known types of
 * that kind; the schema pass then stays quiet about the stage (its options cannot be judged).
 */
export function resolveTypes(
  pipeline: PipelineDocument,
  entries: readonly StageEntry[],
  registry: readonly OperatorDefinition[],
  /** Every operator there is, when `registry` holds only those the document may use. */
  names: readonly { readonly kind: OperatorDefinition['kind']; readonly type: string }[] = registry,
): void {
  for (const entry of entries) {
    if (!entry.value) continue;
    const kind = entry.section.kind;
    const known = names.filter((d) => d.kind === kind).map((d) => d.type);
    const knownText = known.length > 0 ? `known: ${list(known)}` : `no ${kind} types are registered`;
    const type = entry.value.type;
    if (type === undefined) {
      entry.schemaValid = false;
      pipeline.report({
        path: entry.path,
        code: 'ETL_CFG_SCHEMA',
        message: `${kind} \`${entry.id}\` has no \`type\``,
        hint: `add \`type:\`; ${knownText}`,
        target: 'key',
      });
      continue;
    }
    const definition = typeof type === 'string' ? registry.find((d) => d.kind === kind && d.type === type) : undefined;
    if (definition) {
      entry.definition = definition;
      continue;
    }
    entry.schemaValid = false;
    pipeline.report({
      path: [...entry.path, 'type'],
      code: 'ETL_CFG_UNKNOWN_TYPE',
      message:
        typeof type === 'string'
          ? `unknown ${kind} type \`${type}\`; ${knownText}${didYouMeanSuffix(type, known)}`
          : `\`type\` must name a ${kind} operator; found ${describeValue(type)}; ${knownText}`,
    });
  }
}

/** Cross-field checks of the common keys (each operator's own `validate` runs in the record-schema pass). */
export function validateStageOptions(pipeline: PipelineDocument, entries: readonly StageEntry[]): void {
  for (const entry of entries) {
    const { definition, value } = entry;
    if (!definition || !value || !entry.schemaValid) continue;
    const retry = asRecord(value.retry);
    if (retry && Number(retry.initial_backoff_ms) > Number(retry.max_backoff_ms)) {
      pipeline.report({
        path: [...entry.path, 'retry', 'initial_backoff_ms'],
        code: 'ETL_CFG_INVALID',
        message: `\`initial_backoff_ms\` (${retry.initial_backoff_ms}) exceeds \`max_backoff_ms\` (${retry.max_backoff_ms})`,
      });
    }
    const concurrent = definition.kind !== 'source' && definition.concurrent === true;
    if (Number(value.max_in_flight ?? 1) > 1 && !concurrent) {
      pipeline.report({
        path: [...entry.path, 'max_in_flight'],
        code: 'ETL_CFG_INVALID',
        message: `the \`${definition.type}\` ${definition.kind} handles one batch at a time; max_in_flight must be 1`,
        hint: 'remove `max_in_flight`',
      });
    }
    if (definition.kind === 'transform' && value.workers !== undefined && workerCount(value.workers) > 1) {
      const stateless = definition.statelessFor?.(optionsOf(value)) ?? definition.stateless === true;
      if (!stateless) {
        pipeline.report({
          path: [...entry.path, 'workers'],
          code: 'ETL_CFG_INVALID',
          message:
            definition.stateless === true || definition.statelessFor
              ? `the \`${definition.type}\` transform keeps state or uses shared resources with these options; it runs on the main thread only`
              : `the \`${definition.type}\` transform keeps state across batches; only stateless transforms run on worker threads`,
          hint: 'remove `workers`',
        });
      }
    }
  }
}

/** `workers` as written (a count or `auto`: one per core the process may use), as a count. */
export function workerCount(value: unknown): number {
  if (value === 'auto') return availableParallelism();
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 ? value : 1;
}

/** The well-formed entries of a stage's `inputs` (malformed ones are schema errors). */
export function inputsOf(entry: StageEntry): InputEntry[] | undefined {
  const inputs = entry.value?.inputs;
  if (!Array.isArray(inputs)) return undefined;
  const out: InputEntry[] = [];
  inputs.forEach((text, index) => {
    if (typeof text === 'string' && INPUT_RE.test(text)) {
      out.push({ ref: parseInputRef(text), path: [...entry.path, 'inputs', index] });
    }
  });
  return out;
}

/** The operator's own options: the stage map without the common stage keys. */
export function optionsOf(value: Record<string, unknown>): Record<string, unknown> {
  const options: Record<string, unknown> = { ...value };
  for (const key of COMMON_STAGE_KEYS) delete options[key];
  return options;
}

export function toStageSpec(
  pipeline: PipelineDocument,
  entry: StageEntry,
  definition: OperatorDefinition,
  schemas?: StageSchemas,
): StageSpec {
  const value = entry.value ?? {};
  const kind = entry.section.kind;
  const position = pipeline.positionOf(entry.path, 'key');
  return {
    id: entry.id,
    kind,
    type: definition.type,
    definition,
    inputs: (inputsOf(entry) ?? []).map((i) => i.ref),
    options: optionsOf(value),
    onError: kind === 'source' ? 'fail' : ((value.on_error as OnError | undefined) ?? DEFAULT_ON_ERROR[kind]),
    retry: retryPolicy(asRecord(value.retry)),
    maxInFlight: kind === 'source' ? 1 : Number(value.max_in_flight ?? 1),
    workers: kind === 'transform' ? workerCount(value.workers) : 1,
    position: { file: pipeline.file, line: position.line, column: position.column },
    ...(schemas?.input === undefined ? {} : { inputSchema: schemas.input }),
    ...(schemas === undefined ? {} : { outputSchemas: knownSchemas(schemas.outputs) }),
  };
}

/** The record schemas the graph pass computed for a stage; undefined where they cannot be known. */
export interface StageSchemas {
  readonly input: RecordSchema | undefined;
  readonly outputs: Readonly<Record<string, RecordSchema | undefined>>;
}

function knownSchemas(
  outputs: Readonly<Record<string, RecordSchema | undefined>>,
): Readonly<Record<string, RecordSchema>> {
  const known: Record<string, RecordSchema> = {};
  for (const [port, schema] of Object.entries(outputs)) if (schema !== undefined) known[port] = schema;
  return known;
}

function retryPolicy(retry: Record<string, unknown> | undefined): RetryPolicy {
  const attempts = Number(retry?.max_attempts ?? DEFAULT_RETRY.max_attempts);
  return {
    // 0 means: until the run stops.
    max_attempts: attempts === 0 ? Number.POSITIVE_INFINITY : attempts,
    initial_backoff_ms: Number(retry?.initial_backoff_ms ?? DEFAULT_RETRY.initial_backoff_ms),
    max_backoff_ms: Number(retry?.max_backoff_ms ?? DEFAULT_RETRY.max_backoff_ms),
  };
}

export function asRecord(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/**
 * An option its operator marks `writeOnly` (a key, a password) is masked in messages only when its value came
 * from a `${secret:…}` variable: written otherwise (literally, or from a plain `${VAR}`) it is warned about.
 */
export function checkSecretOptions(pipeline: PipelineDocument, entries: readonly StageEntry[]): void {
  for (const entry of entries) {
    const properties = (entry.definition?.schema as { properties?: Record<string, { writeOnly?: boolean }> })
      ?.properties;
    if (!entry.value || properties === undefined) continue;
    for (const [key, property] of Object.entries(properties)) {
      if (property.writeOnly !== true || pipeline.nodeAt([...entry.path, key]) === undefined) continue;
      if (pipeline.secretPaths.has(JSON.stringify([...entry.path, key]))) continue;
      pipeline.report({
        path: [...entry.path, key],
        code: 'ETL_CFG_SECRET',
        severity: 'warning',
        message: `\`${key}\` is a secret but is not read from a \`\${secret:…}\` variable`,
        // biome-ignore lint/suspicious/noTemplateCurlyInString: the hint shows the interpolation syntax
        hint: 'write `${secret:NAME}` with the value in the environment: only then is it masked in every message',
      });
    }
  }
}
