/**
 * The schema of the records on an edge: a JSON Schema object, computed by the graph pass at every port before
 * any I/O, from what each operator declares it emits given its options and the schema reaching it
 * (`outputSchemas` in engine/operator.ts). Record kinds (engine/record.ts) stay the coarse form of the check.
 *
 * Records are flat. A field users filter, index or store as a column is a top-level property; an operator that
 * adds several related fields gives them a common prefix (`geo_country`, `geo_city`) instead of nesting them
 * (`geo: { country }`), so that a field has one name everywhere: a PostgreSQL column, a CSV column, a JSON key,
 * an option naming it. Object-valued fields are bags of open-ended keys (the access record's `extra`), stored
 * whole (jsonb, a JSON cell).
 */
import { isDeepStrictEqual } from 'node:util';
import { didYouMean } from './config/suggest.ts';

export type JsonType = 'string' | 'number' | 'integer' | 'boolean' | 'object' | 'array' | 'null';

/** The JSON Schema of one field: the subset of keywords sinks and checks read (others may be present). */
export interface FieldSchema {
  readonly type?: JsonType | readonly JsonType[];
  readonly format?: string;
  readonly enum?: readonly unknown[];
  readonly const?: unknown;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly exclusiveMinimum?: number;
  readonly exclusiveMaximum?: number;
  readonly multipleOf?: number;
  readonly items?: FieldSchema;
  readonly properties?: Readonly<Record<string, FieldSchema>>;
  readonly required?: readonly string[];
  readonly additionalProperties?: boolean | FieldSchema;
  readonly anyOf?: readonly FieldSchema[];
  readonly oneOf?: readonly FieldSchema[];
  readonly description?: string;
  /** The personal data the field holds ({@link PERSONAL_DATA}), for stages that remove it. */
  readonly 'x-personal-data'?: PersonalData;
}

/**
 * Annotation keyword on a field: the personal data it holds, whatever its name, so that a stage removing personal
 * data (`protectsPersonalData`, e.g. anonymize) treats it by default. `ip`: an IP address, or a block written
 * `address/prefix`, which may be a single address (`171.132.50.94/32`). Kept through unions (never an
 * annotation that sameField ignores): a field is one when any variant of it is.
 */
export const PERSONAL_DATA = 'x-personal-data';
export type PersonalData = 'ip';

/** The fields of `schema` annotated as holding `kind`, in declaration order. */
export function personalDataFields(schema: RecordSchema | undefined, kind: PersonalData): string[] {
  const holds = (field: FieldSchema | undefined): boolean =>
    field !== undefined &&
    (field[PERSONAL_DATA] === kind || (field.anyOf ?? []).some(holds) || (field.oneOf ?? []).some(holds));
  return Object.entries(schema?.properties ?? {})
    .filter(([, field]) => holds(field))
    .map(([name]) => name);
}

/** The JSON Schema of the records on a port. */
export interface RecordSchema {
  readonly $id?: string;
  readonly title?: string;
  readonly description?: string;
  readonly type: 'object';
  readonly properties?: Readonly<Record<string, FieldSchema>>;
  /** Fields every record carries (possibly null, when the field's type admits it). */
  readonly required?: readonly string[];
  /** `false`: records carry no other field (a closed schema). Absent or `true`: they may carry any other. */
  readonly additionalProperties?: boolean;
}

/** Records about which nothing is known: what a port carries when its operator declares nothing. */
export const OPEN_RECORD_SCHEMA: RecordSchema = { type: 'object' };

/** Lines of text as sources of raw text emit them (`kind: raw`, engine/record.ts `RawLine`). */
export const RAW_LINE_SCHEMA = {
  title: 'Raw line',
  type: 'object',
  additionalProperties: false,
  required: ['message'],
  properties: {
    message: {
      type: 'string',
      description: 'The line, without its line ending, decoded as UTF-8: bytes that are not UTF-8 read as U+FFFD.',
    },
    message_base64: {
      type: 'string',
      description:
        'Present when the bytes of the line are not valid UTF-8: exactly the bytes `message` was decoded from, ' +
        'base64, so the original is kept.',
    },
    truncated: {
      type: 'boolean',
      const: true,
      description: 'Present when the line was longer than `max_line_bytes`: `message` holds its beginning.',
    },
    line_bytes: {
      type: 'integer',
      minimum: 0,
      description:
        'Present on a truncated line: its size in bytes as read, without the line ending (a lower bound with ' +
        '`line_bytes_at_least`).',
    },
    line_bytes_at_least: {
      type: 'boolean',
      const: true,
      description:
        'Present when the truncated line filled the read buffer before its end was seen: `line_bytes` is the ' +
        'size read up to the cut, and the line was longer.',
    },
    max_line_bytes: {
      type: 'integer',
      minimum: 1,
      description: "Present on a truncated line: the source's `max_line_bytes`, at which it was cut.",
    },
  },
} as const satisfies RecordSchema;

/** Dead letters (engine/record.ts `DeadLetter`): what every `dead_letter` port carries. */
export const DEAD_LETTER_SCHEMA = {
  title: 'Dead letter',
  type: 'object',
  additionalProperties: false,
  required: ['stage', 'reason', 'time', 'origin', 'raw'],
  properties: {
    stage: { type: 'string', description: 'The stage that rejected the record.' },
    reason: { type: 'string', description: 'Why.' },
    time: { type: 'string', format: 'date-time', description: 'When the record was rejected.' },
    origin: {
      type: ['object', 'null'],
      description:
        'Where the record entered the pipeline: `source`, `file`, `offset`, `line`; for a queue source also ' +
        '`sequence`, `subject` and `deliveries`.',
    },
    raw: { type: 'string', description: 'The original line, or the record as JSON.' },
    raw_base64: {
      type: 'string',
      description:
        'Present when the original line was not valid UTF-8: its bytes, base64 (`raw` holds them decoded, ' +
        'invalid bytes as U+FFFD).',
    },
  },
} as const satisfies RecordSchema;

/** Whether records of `schema` carry only the fields it lists. */
export function isClosed(schema: RecordSchema): boolean {
  return schema.additionalProperties === false;
}

export function fieldNames(schema: RecordSchema): string[] {
  return Object.keys(schema.properties ?? {});
}

/**
 * Records of `schema` with `fields` added (or replaced, when the name exists), as a transform that enriches its
 * input declares its output. `required`: the added fields every record carries. The result has no `$id`: it is
 * no longer the schema that id names.
 */
export function withFields(
  schema: RecordSchema,
  fields: Readonly<Record<string, FieldSchema>>,
  required: readonly string[] = [],
): RecordSchema {
  const { $id: _id, title: _title, ...rest } = schema;
  const kept = (schema.required ?? []).filter((name) => !(name in fields) || required.includes(name));
  return {
    ...rest,
    properties: { ...schema.properties, ...fields },
    required: [...new Set([...kept, ...required])],
  };
}

/**
 * What a stage reading several ports receives: a record of any of them. A field some inputs lack is optional;
 * its type is the union of the inputs' types (unconstrained when an open input may carry it with any type).
 */
export function unionOf(schemas: readonly RecordSchema[]): RecordSchema {
  const [first, ...others] = schemas;
  if (first === undefined) return OPEN_RECORD_SCHEMA;
  if (others.every((s) => s === first || sameSchema(s, first))) return first;
  const names = [...new Set(schemas.flatMap(fieldNames))];
  const properties: Record<string, FieldSchema> = {};
  for (const name of names) {
    const variants: FieldSchema[] = [];
    for (const schema of schemas) {
      const field = schema.properties?.[name];
      if (field !== undefined) variants.push(field);
      else if (!isClosed(schema)) variants.push({});
    }
    properties[name] = unionOfFields(variants);
  }
  const required = names.filter((name) => schemas.every((s) => s.required?.includes(name)));
  return {
    type: 'object',
    properties,
    ...(required.length > 0 ? { required } : {}),
    ...(schemas.every(isClosed) ? { additionalProperties: false } : {}),
  };
}

function unionOfFields(variants: readonly FieldSchema[]): FieldSchema {
  const distinct: FieldSchema[] = [];
  for (const v of variants) if (!distinct.some((d) => sameField(d, v))) distinct.push(v);
  if (distinct.length === 1) return distinct[0] as FieldSchema;
  if (distinct.some(isUnconstrained)) return {};
  const types = distinct.map(typeOnly);
  if (types.every((t) => t !== undefined)) {
    return { type: [...new Set(types.flat() as JsonType[])] };
  }
  return { anyOf: distinct };
}

/** The field's types, when the type is all its schema says (descriptions aside). */
function typeOnly(field: FieldSchema): JsonType[] | undefined {
  const { type, description: _d, ...rest } = field;
  if (type === undefined || Object.keys(rest).length > 0) return undefined;
  return typeof type === 'string' ? [type] : [...type];
}

function isUnconstrained(field: FieldSchema): boolean {
  return Object.keys(stripAnnotations(field) as object).length === 0;
}

/** Whether two field schemas admit the same values (descriptions, titles and examples aside). */
export function sameField(a: FieldSchema, b: FieldSchema): boolean {
  return a === b || isDeepStrictEqual(stripAnnotations(a), stripAnnotations(b));
}

export function sameSchema(a: RecordSchema, b: RecordSchema): boolean {
  return a === b || isDeepStrictEqual(stripAnnotations(a), stripAnnotations(b));
}

const ANNOTATIONS = new Set(['$id', 'title', 'description', 'examples', '$comment', 'default']);

function stripAnnotations(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripAnnotations);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    // `properties` maps field names, some of which (`description`…) are also annotation keywords.
    if (key === 'properties' && v !== null && typeof v === 'object') {
      out[key] = Object.fromEntries(Object.entries(v).map(([name, f]) => [name, stripAnnotations(f)]));
    } else if (!ANNOTATIONS.has(key)) {
      out[key] = stripAnnotations(v);
    }
  }
  return out;
}

/**
 * Whether records of `schema` may carry `field`: true or false when the schema tells, undefined when it cannot
 * (an open schema; a dotted path into an object whose keys are not all declared). A dotted name (`upstream.addr`)
 * is a field literally named so, or a path into object fields.
 */
export function carriesField(schema: RecordSchema | FieldSchema, field: string): boolean | undefined {
  const properties = schema.properties ?? {};
  if (Object.hasOwn(properties, field)) return true;
  const dot = field.indexOf('.');
  if (dot > 0) {
    const inner = properties[field.slice(0, dot)];
    if (inner !== undefined)
      return inner.properties === undefined ? undefined : carriesField(inner, field.slice(dot + 1));
  }
  return schema.additionalProperties === false ? false : undefined;
}

/** What an option naming a field records cannot carry is told: the nearest name, and the names there are. */
export interface UnknownField {
  /** `unknown field \`upstream.addr\` — did you mean \`upstream_addr\`?` (`noun` in place of `field`). */
  readonly message: string;
  /** ` — did you mean \`upstream_addr\`?`, or '' when no name is near. */
  readonly suggestion: string;
  readonly names: readonly string[];
}

/**
 * When records of `schema` cannot carry `field`: what to tell the user. Undefined when they can, or when the
 * schema cannot tell. `noun`: what the names are (`field`, `column`).
 */
export function unknownField(schema: RecordSchema, field: string, noun = 'field'): UnknownField | undefined {
  if (carriesField(schema, field) !== false) return undefined;
  const names = fieldNames(schema);
  const meant = didYouMean(field, names);
  const suggestion = meant === undefined ? '' : ` — did you mean \`${meant}\`?`;
  return { message: `unknown ${noun} \`${field}\`${suggestion}`, suggestion, names };
}

/** One line per field for `etl graph --fields`: name, type, and whether every record carries it. */
export interface FieldDescription {
  readonly name: string;
  readonly type: string;
  readonly required: boolean;
}

export function describeFields(schema: RecordSchema): FieldDescription[] {
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties ?? {}).map(([name, field]) => ({
    name,
    type: typeText(field),
    required: required.has(name),
  }));
}

/** A field's type in a few words: `string (date-time) | null`, `integer`, `string[]`, `"apache" | "nginx"`. */
export function typeText(field: FieldSchema): string {
  const variants = field.anyOf ?? field.oneOf;
  if (variants) return [...new Set(variants.map(typeText))].join(' | ');
  if (field.const !== undefined) return JSON.stringify(field.const);
  if (field.enum) return field.enum.map((v) => JSON.stringify(v)).join(' | ');
  if (field.type === undefined) return 'any';
  const types = typeof field.type === 'string' ? [field.type] : field.type;
  return types
    .map((type) => {
      if (type === 'string' && field.format) return `string (${field.format})`;
      if (type !== 'array') return type;
      if (!field.items) return 'array';
      const items = typeText(field.items);
      return items.includes(' ') ? `(${items})[]` : `${items}[]`;
    })
    .join(' | ');
}
