/**
 * Builds the JSON Schemas users and editors see from the operator registry: one per operator stage, and
 * one self-contained pipeline schema (draft-07, which both Ajv and yaml-language-server support fully)
 * holding every operator under `$defs`, with an Ajv `discriminator` on `type` per stage kind.
 */
import type { StageKind } from '../config/types.ts';
import type { OperatorDefinition, ResourceDefinition } from '../operator.ts';
import {
  API_VERSION,
  COMMON_STAGE_KEYS,
  commonStageProperties,
  JSON_SCHEMA_DIALECT,
  type JsonSchema,
  metadataSchema,
  PIPELINE_KIND,
  SCHEMA_BASE_URL,
  STAGE_ID_PATTERN,
  STAGE_SECTIONS,
  settingsSchema,
  telemetrySchema,
} from './envelope.ts';

export const PIPELINE_SCHEMA_ID = `${SCHEMA_BASE_URL}/pipeline.schema.json`;

/** `$defs` key of an operator in the pipeline schema, e.g. `source-file`. */
export function defKey(def: OperatorDefinition): string {
  return `${def.kind}-${def.type}`;
}

/** The `$defs` key of the union of every operator of a kind. */
export function unionKey(kind: StageKind): string {
  return kind;
}

/**
 * The operator's own options plus the common stage keys, as one closed object. A schema that declares
 * neither `properties` nor `additionalProperties` stays open (test doubles that take anything).
 */
export function operatorStageSchema(def: OperatorDefinition): JsonSchema {
  const {
    $id,
    $schema: _dialect,
    type: _type,
    properties,
    required,
    additionalProperties,
    examples: _examples,
    ...rest
  } = def.schema as JsonSchema;
  const own = (properties ?? {}) as Record<string, JsonSchema>;
  for (const key of COMMON_STAGE_KEYS) {
    if (key in own) {
      throw new Error(
        `operator ${def.kind} \`${def.type}\`: its schema must not declare the common stage key \`${key}\``,
      );
    }
  }
  const closed = additionalProperties ?? properties === undefined;
  return {
    $schema: JSON_SCHEMA_DIALECT,
    $id,
    title: `${def.type} ${def.kind}`,
    description: def.summary,
    ...rest,
    type: 'object',
    required: ['type', ...((required as string[] | undefined) ?? [])],
    properties: { ...commonStageProperties(def.kind, def.type), ...own },
    additionalProperties: closed,
    examples: def.examples.map((example) => ({ type: def.type, ...(example as object) })),
  };
}

/** A resource's options plus `type`, as one closed object. */
export function resourceSchema(def: ResourceDefinition): JsonSchema {
  const {
    $id,
    $schema: _dialect,
    type: _type,
    properties,
    required,
    examples: _examples,
    ...rest
  } = def.schema as JsonSchema;
  return {
    $schema: JSON_SCHEMA_DIALECT,
    $id,
    title: `${def.type} resource`,
    description: def.summary,
    ...rest,
    type: 'object',
    required: ['type', ...((required as string[] | undefined) ?? [])],
    properties: {
      type: { type: 'string', const: def.type, description: `The resource: \`${def.type}\`.` },
      ...((properties ?? {}) as Record<string, JsonSchema>),
    },
    additionalProperties: false,
    examples: def.examples.map((example) => ({ type: def.type, ...(example as object) })),
  };
}

export function composePipelineSchema(
  registry: readonly OperatorDefinition[],
  resources: readonly ResourceDefinition[] = [],
): JsonSchema {
  const defs: Record<string, JsonSchema> = {};
  for (const def of resources) defs[`resource-${def.type}`] = embed(resourceSchema(def), `resource-${def.type}`);
  defs.resource = {
    type: 'object',
    description: 'A shared resource; `type` picks which.',
    required: ['type'],
    properties: { type: { type: 'string', description: 'The resource type.' } },
    ...(resources.length > 0
      ? {
          discriminator: { propertyName: 'type' },
          oneOf: resources.map((d) => ({ $ref: `#/$defs/resource-${d.type}` })),
        }
      : {}),
  };
  for (const def of registry) {
    const key = defKey(def);
    if (key in defs) throw new Error(`operator ${def.kind} \`${def.type}\` is registered twice`);
    defs[key] = embed(operatorStageSchema(def), key);
  }
  for (const section of STAGE_SECTIONS) {
    defs[unionKey(section.kind)] = stageUnion(
      section.kind,
      registry.filter((d) => d.kind === section.kind),
    );
  }
  const sections: Record<string, JsonSchema> = {};
  for (const section of STAGE_SECTIONS) {
    sections[section.key] = {
      type: 'object',
      description: SECTION_DESCRIPTIONS[section.key],
      propertyNames: { pattern: STAGE_ID_PATTERN },
      additionalProperties: { $ref: `#/$defs/${unionKey(section.kind)}` },
    };
  }
  return {
    $schema: JSON_SCHEMA_DIALECT,
    $id: PIPELINE_SCHEMA_ID,
    title: 'etl pipeline',
    description: 'A dataflow of sources, operators and sinks, run with `etl apply`.',
    type: 'object',
    additionalProperties: false,
    required: ['apiVersion', 'kind', 'metadata', 'spec'],
    properties: {
      apiVersion: { type: 'string', const: API_VERSION, description: 'Version of this document format.' },
      kind: { type: 'string', const: PIPELINE_KIND, description: 'What this document declares.' },
      metadata: metadataSchema,
      spec: {
        type: 'object',
        description: 'What the pipeline does.',
        additionalProperties: false,
        properties: {
          settings: settingsSchema,
          telemetry: telemetrySchema,
          resources: {
            type: 'object',
            description:
              'Clients stages share, by name (a Redis connection, a GeoIP database): opened once, before the ' +
              'stages, and named in their options.',
            propertyNames: { pattern: STAGE_ID_PATTERN },
            additionalProperties: { $ref: '#/$defs/resource' },
          },
          ...sections,
        },
      },
    },
    $defs: defs,
  };
}

/**
 * One operator's stage, as the pipeline schema holds it (under `#/$defs/<kind>-<type>`, so that its errors name
 * the same schema paths), on its own: what engine/schema/compiled.ts compiles per operator.
 */
export function stageValidatorSchema(def: OperatorDefinition): JsonSchema {
  const key = defKey(def);
  return {
    $schema: JSON_SCHEMA_DIALECT,
    $id: `${SCHEMA_BASE_URL}/stages/${key}.schema.json`,
    $defs: { [key]: embed(operatorStageSchema(def), key) },
    $ref: `#/$defs/${key}`,
  };
}

const SECTION_DESCRIPTIONS = {
  sources: 'Where records enter the pipeline, by stage id.',
  operators: 'Transforms between sources and sinks, by stage id.',
  sinks: 'Where records leave the pipeline, by stage id.',
} as const;

function stageUnion(kind: StageKind, defs: readonly OperatorDefinition[]): JsonSchema {
  const base: JsonSchema = {
    type: 'object',
    description: `A ${kind}; \`type\` picks the operator.`,
    required: ['type'],
    properties: { type: { type: 'string', description: `The ${kind} operator.` } },
  };
  if (defs.length === 0) return base;
  return {
    ...base,
    // Ajv picks the branch from `type`, so errors speak of that operator's options only.
    discriminator: { propertyName: 'type' },
    oneOf: defs.map((d) => ({ $ref: `#/$defs/${defKey(d)}` })),
  };
}

// Keys whose values are data, not subschemas: `$ref`s inside them must not be rewritten.
const DATA_KEYWORDS = new Set(['default', 'examples', 'const', 'enum']);
// Keys whose values map names to subschemas (a property may well be called `default`).
const SCHEMA_MAP_KEYWORDS = new Set(['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas']);

/** Re-roots an operator schema under `#/$defs/<key>`: drops its `$id`, rewrites its local `$ref`s. */
function embed(schema: JsonSchema, key: string): JsonSchema {
  const id = typeof schema.$id === 'string' ? schema.$id : undefined;
  const { $id: _id, $schema: _dialect, ...rest } = schema;
  const rewrite = (value: unknown, schemaMap: boolean): unknown => {
    if (Array.isArray(value)) return value.map((v) => rewrite(v, false));
    if (value === null || typeof value !== 'object') return value;
    const out: JsonSchema = {};
    for (const [k, v] of Object.entries(value)) {
      if (schemaMap) out[k] = rewrite(v, false);
      else if (k === '$ref' && typeof v === 'string') out[k] = rewriteRef(v, id, key);
      else if (DATA_KEYWORDS.has(k)) out[k] = v;
      else out[k] = rewrite(v, SCHEMA_MAP_KEYWORDS.has(k));
    }
    return out;
  };
  return rewrite(rest, false) as JsonSchema;
}

function rewriteRef(ref: string, id: string | undefined, key: string): string {
  const local = id !== undefined && ref.startsWith(`${id}#`) ? ref.slice(id.length) : ref;
  return local.startsWith('#') ? `#/$defs/${key}${local.slice(1)}` : ref;
}
