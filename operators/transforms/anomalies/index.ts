import { defineTransform, type FieldUse, type OptionProblem } from '../../../engine/operator.ts';
import type { FieldSchema, RecordSchema } from '../../../engine/record-schema.ts';
import { ANOMALIES_PORT, type AnomaliesOptions, schema } from './schema.ts';

const defaults = {
  key_fields: [...schema.properties.key_fields.default],
  status_field: schema.properties.status_field.default,
  time_field: schema.properties.time_field.default,
  bucket_seconds: schema.properties.bucket_seconds.default,
  half_life_buckets: schema.properties.half_life_buckets.default,
  threshold: schema.properties.threshold.default,
  min_count: schema.properties.min_count.default,
  warmup_buckets: schema.properties.warmup_buckets.default,
  direction: schema.properties.direction.default,
  max_keys: schema.properties.max_keys.default,
} as AnomaliesOptions;

/** The measures every anomaly record carries, besides its key. */
export const ANOMALY_FIELDS = {
  anomaly_bucket_start: {
    type: 'string',
    format: 'date-time',
    description: 'Start of the event-time bucket whose count broke from the baseline, ISO-8601 UTC.',
  },
  anomaly_bucket_seconds: { type: 'number', exclusiveMinimum: 0, description: 'The bucket length (`bucket_seconds`).' },
  anomaly_observed: { type: 'integer', minimum: 0, description: 'Records of the key in the bucket.' },
  anomaly_baseline: {
    type: 'number',
    minimum: 0,
    description: 'The key’s baseline before this bucket: the exponentially weighted mean of its past bucket counts.',
  },
  anomaly_deviation: {
    type: 'number',
    minimum: 1,
    description:
      'The deviation the score is measured in: the weighted standard deviation of the past counts, at least ' +
      'sqrt(baseline) and 1.',
  },
  anomaly_score: { type: 'number', description: '(observed − baseline) / deviation.' },
  anomaly_direction: { type: 'string', enum: ['up', 'down'], description: 'A rise or a drop.' },
  anomaly_baseline_buckets: {
    type: 'integer',
    minimum: 0,
    description: 'Buckets the baseline was computed over (at least `warmup_buckets`).',
  },
} as const satisfies Record<string, FieldSchema>;

const STATUS_CLASS: FieldSchema = {
  type: ['string', 'null'],
  enum: ['1xx', '2xx', '3xx', '4xx', '5xx', null],
  description: 'The class of the status (`status_field`) of the key’s records; null for records without one.',
};

/** The anomaly records: the key's fields, typed as in the input, then the measures. */
function anomalySchema(options: AnomaliesOptions, input: RecordSchema): RecordSchema {
  const properties: Record<string, FieldSchema> = {};
  for (const field of options.key_fields) {
    const declared = input.properties?.[field];
    // A key field records may lack is null in the key.
    properties[field] =
      declared === undefined ? { description: `The key's \`${field}\`.` } : { ...declared, ...nullable(declared) };
  }
  if (options.status_field !== null) properties.status_class = STATUS_CLASS;
  Object.assign(properties, ANOMALY_FIELDS);
  return {
    title: 'Anomaly',
    type: 'object',
    additionalProperties: false,
    required: Object.keys(properties),
    properties,
  };
}

function nullable(field: FieldSchema): Partial<FieldSchema> {
  if (field.type === undefined || field.anyOf || field.oneOf || field.enum || field.const !== undefined) return {};
  const types = typeof field.type === 'string' ? [field.type] : field.type;
  return types.includes('null') ? {} : { type: [...types, 'null'] };
}

export default defineTransform<typeof schema, AnomaliesOptions>({
  type: 'anomalies',
  stability: 'alpha',
  summary: 'Flags per-key request rates (client, endpoint, status class) that break from their own baseline',
  schema,
  accepts: ['access'],
  outputs: { default: 'access', [ANOMALIES_PORT]: 'any' },
  outputSchemas(options, input): Readonly<Record<string, RecordSchema>> {
    return { default: input, [ANOMALIES_PORT]: anomalySchema(options, input) };
  },
  fields(options) {
    const uses: FieldUse[] = options.key_fields.map((field, i) => ({ path: ['key_fields', i], field }));
    if (options.status_field !== null) uses.push({ path: ['status_field'], field: options.status_field });
    uses.push({ path: ['time_field'], field: options.time_field });
    return uses;
  },
  examples: [
    defaults,
    { ...defaults, key_fields: ['vhost'], status_field: null, bucket_seconds: 300, direction: 'both' },
    { ...defaults, threshold: 3, min_count: 5, warmup_buckets: 5, half_life_buckets: 10, max_keys: 10000 },
  ],
  validate(options) {
    const problems: OptionProblem[] = [];
    const taken = new Set<string>([
      ...Object.keys(ANOMALY_FIELDS),
      ...(options.status_field === null ? [] : ['status_class']),
    ]);
    options.key_fields.forEach((field, i) => {
      if (taken.has(field)) {
        problems.push({
          path: ['key_fields', i],
          message: `\`${field}\` is a field of the anomaly records themselves`,
          hint: 'key by another field',
        });
      }
      if (options.key_fields.indexOf(field) !== i) {
        problems.push({ path: ['key_fields', i], message: `\`${field}\` is listed twice` });
      }
    });
    return problems;
  },
  create: async (options, ctx) => new (await import('./anomalies.ts')).AnomaliesTransform(options, ctx),
});
