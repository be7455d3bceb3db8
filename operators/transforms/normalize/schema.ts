import type { FromSchema } from 'json-schema-to-ts';

const field = { type: 'string', minLength: 1, description: 'A field of the records reaching the step.' } as const;
/** Names of fields a step creates: they become columns, so they are plain identifiers. */
const newField = {
  type: 'string',
  pattern: '^[A-Za-z_][A-Za-z0-9_]*$',
  description: 'The field the step writes (letters, digits, `_`).',
} as const;
const onError = {
  type: 'string',
  enum: ['dead_letter', 'null'],
  description:
    'What becomes of a record whose value the step cannot make: `dead_letter` (the record as it reached the stage ' +
    'goes to `<id>.dead_letter` with the step and the value in the reason; default), or `null` (the field is set ' +
    'to null and the record goes on).',
} as const;

/** One operation per step: the key names it, its value its parameters. */
const operations = {
  rename: {
    type: 'object',
    additionalProperties: false,
    required: ['from', 'to'],
    description: 'Renames a field; a field already named `to` is replaced.',
    properties: { from: field, to: newField },
  },
  cast: {
    type: 'object',
    additionalProperties: false,
    required: ['field', 'to'],
    description:
      'Converts a value to a type. integer: integers, and strings of decimal digits with an optional sign; number: ' +
      'numbers and numeric strings; string: any value (objects and lists as JSON); boolean: booleans, `true`/`false`/' +
      '`yes`/`no`/`1`/`0` (any case) and the numbers 1 and 0. Null stays null. Anything else fails (see `on_error`).',
    properties: {
      field,
      to: { type: 'string', enum: ['integer', 'number', 'string', 'boolean'], description: 'The type.' },
      on_error: onError,
    },
  },
  default: {
    type: 'object',
    additionalProperties: false,
    required: ['field', 'value'],
    description: 'Gives a null or absent field a value.',
    properties: {
      field,
      value: { type: ['string', 'number', 'boolean'], description: 'The value.' },
    },
  },
  drop: {
    type: 'object',
    additionalProperties: false,
    required: ['fields'],
    description: 'Removes fields.',
    properties: { fields: { type: 'array', minItems: 1, items: field, description: 'The fields.' } },
  },
  compute: {
    type: 'object',
    additionalProperties: false,
    required: ['field', 'expression'],
    description:
      'Sets a field to the value of a CEL expression over `record` (engine/expression.ts), type-checked against the ' +
      'records reaching the step; the type it gives is the field type (integer, number, string, boolean, date-time ' +
      'string for a timestamp, list, map), so a database sink makes a typed column.',
    properties: {
      field: newField,
      expression: {
        type: 'string',
        minLength: 1,
        description: 'The CEL expression: `record.bytes / 1024`, `record.status >= 500`.',
      },
      on_error: onError,
    },
  },
  lowercase_host: {
    type: 'object',
    additionalProperties: false,
    required: ['field'],
    description: 'Lower-cases a host name and removes one trailing dot (`WWW.Example.COM.` → `www.example.com`).',
    properties: { field },
  },
  url: {
    type: 'object',
    additionalProperties: false,
    required: ['field'],
    description:
      'Splits a request target or URL into its path (kept in `field`, without `?…` and `#…`) and its query, and ' +
      'percent-decodes both. Malformed percent-encoding never fails: a `%` not followed by two hex digits stays as ' +
      'it is, and bytes that are not UTF-8 become U+FFFD.',
    properties: {
      field,
      decode: { type: 'boolean', description: 'Percent-decode the path (default true). The query is always decoded.' },
      query_field: {
        ...newField,
        description:
          'The field the query goes to, as a map from parameter to value (`+` is a space; a parameter given twice ' +
          'keeps its last value; `{}` without a query; null when `field` holds no string). Unset: the query is dropped.',
      },
    },
  },
  query: {
    type: 'object',
    additionalProperties: false,
    required: ['field', 'to'],
    description:
      'Splits a query string (with or without its leading `?`: what `parse` puts in `query`) into a map from ' +
      'parameter to value in a new field, decoded as forms are (`+` is a space; malformed percent-encoding stays as ' +
      'it is; a parameter given twice keeps its last value). `{}` for an empty query, null when `field` holds no string.',
    properties: { field, to: newField },
  },
  endpoint: {
    type: 'object',
    additionalProperties: false,
    required: ['field', 'to'],
    description:
      'Writes a template of a path to a new field, each segment that is an id replaced by a placeholder ' +
      '(`/users/123/orders/9` → `/users/:id/orders/:id`), so that records group by endpoint. The path itself stays. ' +
      'A query or fragment is left out of the template; null when `field` holds no string.',
    properties: {
      field,
      to: newField,
      builtin: {
        type: 'array',
        uniqueItems: true,
        items: { type: 'string', enum: ['integer', 'uuid', 'hash', 'date'] },
        description:
          'The built-in patterns to apply (default all): `integer` (digits) → `:id`, `uuid` (8-4-4-4-12 hex) → ' +
          '`:id`, `hash` (16 or more hex digits) → `:id`, `date` (`2026-12-05`) → `:date`.',
      },
      patterns: {
        type: 'array',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['regex', 'placeholder'],
          description: 'A pattern of your own, tried before the built-in ones.',
          properties: {
            regex: {
              type: 'string',
              minLength: 1,
              description: 'A JavaScript regular expression a whole segment must match (it is anchored for you).',
            },
            placeholder: { type: 'string', minLength: 1, description: 'What the segment becomes: `:sku`.' },
          },
        },
        description: 'Patterns of your own, each tried on every segment in order, before the built-in ones.',
      },
    },
  },
} as const;

export const OPERATIONS = Object.keys(operations) as (keyof typeof operations)[];
export type OperationName = keyof typeof operations;

const when = {
  type: 'string',
  minLength: 1,
  description:
    'A CEL condition over `record` (as it is at this step): the step applies only to records for which it is true ' +
    '(false, or an error such as reading a null field, skips the step).',
} as const;

function variant<const K extends OperationName>(key: K) {
  return {
    type: 'object',
    additionalProperties: false,
    required: [key],
    description: `A \`${key}\` step.`,
    properties: { when, ...({ [key]: operations[key] } as { [P in K]: (typeof operations)[K] }) },
  } as const;
}

const step = {
  anyOf: [
    variant('rename'),
    variant('cast'),
    variant('default'),
    variant('drop'),
    variant('compute'),
    variant('lowercase_host'),
    variant('url'),
    variant('query'),
    variant('endpoint'),
  ],
  description: 'A step: one operation (`rename`, `cast`, `default`, `drop`, `compute`, …) and an optional `when`.',
} as const;

export const schema = {
  $id: 'https://etl.dev/schemas/operators/transforms/normalize.json',
  type: 'object',
  additionalProperties: false,
  required: ['steps'],
  description:
    'Renames, casts, defaults, drops and computes fields, lower-cases hosts, decodes URLs and splits queries, and ' +
    'makes endpoint templates, in steps applied in order to every record.',
  properties: {
    steps: {
      type: 'array',
      minItems: 1,
      items: step,
      description: 'The steps, in order: each sees the records as the steps before it left them.',
    },
  },
} as const;

/** Ajv applies no default inside `anyOf`: a step's optional keys say their defaults, which steps.ts applies. */
export type Step = FromSchema<typeof step, { keepDefaultedPropertiesOptional: true }>;
export type NormalizeOptions = { steps: Step[] };
