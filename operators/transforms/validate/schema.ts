import type { FromSchema } from 'json-schema-to-ts';

const field = { type: 'string', minLength: 1, description: 'The field the rule checks.' } as const;
const allowNull = {
  type: 'boolean',
  description: 'Whether a null or absent value passes (default true: the rule checks only values that are there).',
} as const;

/** One check per rule: the key names the check, its value its parameters. */
const checks = {
  ip: {
    type: 'object',
    additionalProperties: false,
    required: ['field'],
    description: 'An IPv4 or IPv6 address (not a host name, not a CIDR block).',
    properties: {
      field,
      allow_null: allowNull,
      version: { type: 'string', enum: ['any', '4', '6'], description: 'Which family is valid (default `any`).' },
      public_only: {
        type: 'boolean',
        description:
          'Refuse private, loopback, link-local, multicast, carrier-grade NAT, documentation and other reserved ' +
          'ranges (IANA special-purpose registries): only global unicast addresses pass. Default false.',
      },
    },
  },
  timestamp: {
    type: 'object',
    additionalProperties: false,
    required: ['field'],
    description: 'An ISO-8601 date-time (what parse emits), not too far in the future nor, optionally, the past.',
    properties: {
      field,
      allow_null: allowNull,
      max_future_seconds: {
        type: 'number',
        minimum: 0,
        description: 'Clock skew allowed: how far after the processing time a record may be (default 300).',
      },
      max_age_seconds: {
        type: 'number',
        exclusiveMinimum: 0,
        description: 'How far before the processing time a record may be; unset: no limit (backfills).',
      },
    },
  },
  path: {
    type: 'object',
    additionalProperties: false,
    required: ['field'],
    description:
      'A well-formed request path: starts with `/` (or is `*`), no spaces or control characters, every `%` ' +
      'followed by two hex digits, at most `max_length` characters.',
    properties: {
      field,
      allow_null: allowNull,
      max_length: { type: 'integer', minimum: 1, description: 'Longest valid path, in characters (default 8192).' },
    },
  },
  url: {
    type: 'object',
    additionalProperties: false,
    required: ['field'],
    description:
      'A well-formed absolute URL (WHATWG URL parser) with one of `schemes`, no spaces or control characters, ' +
      'every `%` followed by two hex digits, at most `max_length` characters.',
    properties: {
      field,
      allow_null: allowNull,
      schemes: {
        type: 'array',
        minItems: 1,
        items: { type: 'string', pattern: '^[a-z][a-z0-9+.-]*$', description: 'A scheme, without `:`.' },
        description: 'The schemes that are valid (default `[http, https]`).',
      },
      max_length: { type: 'integer', minimum: 1, description: 'Longest valid URL, in characters (default 8192).' },
    },
  },
  method: {
    type: 'object',
    additionalProperties: false,
    required: ['field'],
    description: 'An HTTP method among `allowed` (case-sensitive, as methods are).',
    properties: {
      field,
      allow_null: allowNull,
      allowed: {
        type: 'array',
        minItems: 1,
        items: { type: 'string', minLength: 1, description: 'A method.' },
        description: 'The valid methods (default GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, CONNECT, TRACE).',
      },
    },
  },
  status: {
    type: 'object',
    additionalProperties: false,
    required: ['field'],
    description: 'An HTTP status: an integer from 100 to 599.',
    properties: { field, allow_null: allowNull },
  },
  non_negative: {
    type: 'object',
    additionalProperties: false,
    required: ['field'],
    description: 'A number ≥ 0 (byte counts, durations).',
    properties: { field, allow_null: allowNull },
  },
  required: {
    type: 'object',
    additionalProperties: false,
    required: ['fields'],
    description: 'Fields every record must carry with a value (not null, not absent).',
    properties: {
      fields: { type: 'array', minItems: 1, items: field, description: 'The fields.' },
    },
  },
  regex: {
    type: 'object',
    additionalProperties: false,
    required: ['field', 'pattern'],
    description: 'A string the regular expression finds a match in (anchor it with `^…$` to match it whole).',
    properties: {
      field,
      allow_null: allowNull,
      pattern: { type: 'string', minLength: 1, description: 'A JavaScript regular expression, without slashes.' },
      ignore_case: { type: 'boolean', description: 'Match regardless of case (default false).' },
    },
  },
  enum: {
    type: 'object',
    additionalProperties: false,
    required: ['field', 'values'],
    description: 'A value among `values` (strings, numbers or booleans, compared exactly).',
    properties: {
      field,
      allow_null: allowNull,
      values: {
        type: 'array',
        minItems: 1,
        items: { type: ['string', 'number', 'boolean'], description: 'A valid value.' },
        description: 'The valid values.',
      },
    },
  },
  range: {
    type: 'object',
    additionalProperties: false,
    required: ['field'],
    minProperties: 2,
    description: 'A number within `min` and `max` (both included; give one or both).',
    properties: {
      field,
      allow_null: allowNull,
      min: { type: 'number', description: 'Smallest valid value.' },
      max: { type: 'number', description: 'Largest valid value.' },
    },
  },
  condition: {
    type: 'string',
    minLength: 1,
    description:
      'A CEL expression over `record` that must be true: `record.status < 500 || has(record.upstream_status)` ' +
      '(engine/expression.ts). Type-checked against the schema of the records reaching the stage.',
  },
} as const;

export const CHECKS = Object.keys(checks) as (keyof typeof checks)[];
export type CheckName = keyof typeof checks;

const ruleBase = {
  name: {
    type: 'string',
    pattern: '^[A-Za-z_][A-Za-z0-9_.-]*$',
    description: 'The rule, in dead-letter reasons, `validation_rules`, the summary and metrics.',
  },
  action: {
    type: 'string',
    enum: ['dead_letter', 'drop', 'flag'],
    description:
      'What becomes of a record failing the rule: `dead_letter` (to `<id>.dead_letter` with the rule in the ' +
      'reason), `drop` (discarded, counted), `flag` (passes with `validation_failed: true` and the rule in ' +
      '`validation_rules`). Default `dead_letter`. A record failing several rules takes the first of dead_letter, drop, flag.',
  },
} as const;

function variant<const K extends CheckName>(key: K) {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['name', key],
    description: `A \`${key}\` rule.`,
    properties: { ...ruleBase, ...({ [key]: checks[key] } as { [P in K]: (typeof checks)[K] }) },
  } as const;
}

const rule = {
  anyOf: [
    variant('ip'),
    variant('timestamp'),
    variant('path'),
    variant('url'),
    variant('method'),
    variant('status'),
    variant('non_negative'),
    variant('required'),
    variant('regex'),
    variant('enum'),
    variant('range'),
    variant('condition'),
  ],
  description: 'A rule: `name`, `action`, and one check (`ip`, `timestamp`, `path`, …, `condition`).',
} as const;

export const schema = {
  $id: 'https://etl.dev/schemas/operators/transforms/validate.json',
  type: 'object',
  additionalProperties: false,
  required: ['rules'],
  description:
    'Checks every record against rules; a failing record is dead-lettered, dropped or flagged as each rule says. ' +
    'The share of valid records is in the run summary and metrics, and `min_valid_ratio` fails the run below it.',
  properties: {
    rules: {
      type: 'array',
      minItems: 1,
      items: rule,
      description: 'The rules, each checked on every record.',
    },
    min_valid_ratio: {
      type: 'number',
      minimum: 0,
      maximum: 1,
      description:
        'The share of records failing no rule (0–1) below which the run fails (exit 1, once every record was ' +
        'delivered and checkpointed): `0.995`. Unset: the run never fails for it.',
      examples: [0.995],
    },
  },
} as const;

/** Ajv applies no default inside `anyOf`: a rule's optional keys say their defaults, which rules.ts applies. */
export type Rule = FromSchema<typeof rule, { keepDefaultedPropertiesOptional: true }>;
export type ValidateOptions = Omit<FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>, 'rules'> & {
  rules: Rule[];
};
