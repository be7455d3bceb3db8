import type { FieldUse, OptionProblem } from '../../../engine/operator.ts';
import { defineTransform } from '../../../engine/operator.ts';
import { type FieldSchema, type JsonType, type RecordSchema, unionOf } from '../../../engine/record-schema.ts';
import { ipFieldsFor } from './ip-fields.ts';
import {
  type AnonymizeOptions,
  DEFAULT_PARAM_PATTERNS,
  DEFAULT_PARAMS,
  DEFAULT_USER_FIELDS,
  schema,
} from './schema.ts';

const defaults = {
  ip: { mode: 'truncate', ipv4_prefix: 24, ipv6_prefix: 48 },
  user: { mode: 'drop' },
  scrub: {
    params: [...DEFAULT_PARAMS],
    param_patterns: [...DEFAULT_PARAM_PATTERNS],
    emails: true,
    phones: true,
    cards: true,
    ips: true,
  },
  dead_letters: 'scrub',
} satisfies AnonymizeOptions;

/** The field as it may now also be null (a value dropped, or one that could not be vouched for). */
function nullable(field: FieldSchema): FieldSchema {
  if (field.type === undefined) return field;
  const types = typeof field.type === 'string' ? [field.type] : [...field.type];
  return types.includes('null') ? field : { ...field, type: [...types, 'null'] as JsonType[] };
}

function pseudonymField(field: FieldSchema, keyId: string | undefined): FieldSchema {
  const description = `Pseudonym \`${keyId ?? 'k'}:<HMAC>\` (anonymize): still personal data under GDPR.`;
  const types = field.type === undefined ? [] : typeof field.type === 'string' ? [field.type] : field.type;
  if (types.includes('array')) return { type: ['array', 'null'], items: { type: 'string' }, description };
  return { type: ['string', 'null'], description };
}

/** The records after anonymize: the same fields, with the types its modes give them. */
export function anonymizedSchema(options: AnonymizeOptions, input: RecordSchema): RecordSchema {
  const properties = input.properties;
  if (properties === undefined) return input;
  const changed: Record<string, FieldSchema> = { ...properties };
  const ipMode = options.ip.mode;
  for (const name of ipFieldsFor(options, input)) {
    const field = properties[name];
    if (field === undefined || ipMode === 'keep') continue;
    // A truncated address is still an address: the field keeps its schema (a postgres column stays inet).
    changed[name] = ipMode === 'pseudonymize' ? pseudonymField(field, options.key_id) : nullable(field);
  }
  const userMode = options.user.mode;
  for (const name of options.user.fields ?? DEFAULT_USER_FIELDS) {
    const field = properties[name];
    if (field === undefined || userMode === 'keep') continue;
    changed[name] = userMode === 'pseudonymize' ? pseudonymField(field, options.key_id) : nullable(field);
  }
  const { $id: _id, title: _title, ...rest } = input;
  return { ...rest, properties: changed };
}

export default defineTransform<typeof schema, AnonymizeOptions>({
  type: 'anonymize',
  stability: 'alpha',
  summary: 'Remove personal data (GDPR): truncate or pseudonymize IPs, drop user names, scrub URLs and dead letters',
  schema,
  accepts: ['access', 'error_log', 'raw', 'dead_letter', 'any'],
  outputs: { default: 'any' },
  protectsPersonalData: true,
  outputSchemas(options, input, inputs) {
    // Dead letters read here leave on `dead_letter`: only the other inputs make the records on `default`.
    const records =
      inputs === undefined ? input : unionOf(inputs.filter((i) => i.kind !== 'dead_letter').map((i) => i.schema));
    return { default: anonymizedSchema(options, records) };
  },
  fields(options) {
    const uses: FieldUse[] = [];
    const add = (section: 'ip' | 'user' | 'scrub', fields: readonly string[] | undefined) => {
      fields?.forEach((field, i) => {
        uses.push({ path: [section, 'fields', i], field });
      });
    };
    add('ip', options.ip.fields);
    add('user', options.user.fields);
    add('scrub', options.scrub.fields);
    return uses;
  },
  examples: [
    { ...defaults },
    {
      ...defaults,
      ip: { ...defaults.ip, mode: 'pseudonymize' },
      user: { mode: 'pseudonymize' },
      key: 'example-key-do-not-use-0123456789',
      key_id: 'k2026',
    },
    {
      ...defaults,
      ip: { ...defaults.ip, fields: ['client_ip'], ipv4_prefix: 16, ipv6_prefix: 32 },
      scrub: { ...defaults.scrub, fields: ['request', 'referrer'], params: ['token', 'email'], param_patterns: [] },
      dead_letters: 'drop_raw',
    },
  ],
  validate(options) {
    const problems: OptionProblem[] = [];
    const pseudonymizes = [
      ...(options.ip.mode === 'pseudonymize' ? [['ip', 'mode']] : []),
      ...(options.user.mode === 'pseudonymize' ? [['user', 'mode']] : []),
    ];
    if (options.key === undefined) {
      for (const path of pseudonymizes) {
        problems.push({
          path,
          message: '`pseudonymize` needs `key`',
          // biome-ignore lint/suspicious/noTemplateCurlyInString: the hint shows the interpolation syntax
          hint: 'set `key: ${secret:ANONYMIZE_KEY}` and `key_id`, with the key in the environment',
        });
      }
    } else {
      if (options.key_id === undefined) {
        problems.push({
          path: ['key'],
          message: '`key` needs `key_id`',
          hint: 'name the key (`key_id: k2026`): it prefixes every pseudonym, so that a rotation shows in the data',
        });
      }
      if (pseudonymizes.length === 0) {
        problems.push({
          path: ['key'],
          severity: 'warning',
          message: '`key` is not used: no mode is `pseudonymize`',
        });
      }
    }
    options.scrub.param_patterns.forEach((pattern, i) => {
      try {
        new RegExp(pattern, 'i');
      } catch (error) {
        problems.push({
          path: ['scrub', 'param_patterns', i],
          message: `\`${pattern}\` is not a regular expression: ${(error as Error).message}`,
        });
      }
    });
    return problems;
  },
  async create(options, ctx) {
    const { AnonymizeTransform } = await import('./anonymize.ts');
    return new AnonymizeTransform(options, ctx);
  },
});
