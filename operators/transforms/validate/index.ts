import { defineTransform, type OptionProblem } from '../../../engine/operator.ts';
import { type FieldSchema, OPEN_RECORD_SCHEMA, type RecordSchema, withFields } from '../../../engine/record-schema.ts';
import { compileRule, ruleFields, typeMismatch } from './rules.ts';
import { type ValidateOptions, schema } from './schema.ts';

/** The fields `flag` rules add to every record passing the stage (valid ones too, so every record has one shape). */
export const FLAG_FIELDS: Readonly<Record<string, FieldSchema>> = {
  validation_failed: { type: 'boolean', description: 'Whether the record failed a `flag` rule of the validate stage.' },
  validation_rules: {
    type: 'array',
    items: { type: 'string', description: 'A rule name.' },
    description: 'The rules the record failed, in the order they are declared; empty when it failed none.',
  },
};

export default defineTransform<typeof schema, ValidateOptions>({
  type: 'validate',
  stability: 'alpha',
  summary: 'Check records against rules (addresses, times, paths, URLs, statuses, CEL conditions…) and measure quality',
  schema,
  accepts: ['any'],
  outputs: { default: 'any' },
  concurrent: false,
  // Flag rules set their two fields on the records themselves; without them records pass as they are.
  changesRecordsFor: (options) => options.rules.some((rule) => (rule.action ?? 'dead_letter') === 'flag'),
  outputSchemas(options, input): Readonly<Record<string, RecordSchema>> {
    const flagging = options.rules.some((rule) => rule.action === 'flag');
    return { default: flagging ? withFields(input, FLAG_FIELDS, Object.keys(FLAG_FIELDS)) : input };
  },
  fields(options) {
    return options.rules.flatMap((rule, i) => ruleFields(rule, i));
  },
  examples: [
    {
      rules: [
        { name: 'client_ip', action: 'dead_letter', ip: { field: 'client_ip', public_only: true } },
        { name: 'status', action: 'dead_letter', status: { field: 'status' } },
        { name: 'method', action: 'flag', method: { field: 'method', allowed: ['GET', 'HEAD', 'POST'] } },
        { name: 'fresh', action: 'drop', timestamp: { field: 'timestamp', max_age_seconds: 86400 } },
      ],
      min_valid_ratio: 0.995,
    },
    {
      rules: [
        { name: 'has_time', action: 'dead_letter', required: { fields: ['timestamp', 'client_ip'] } },
        { name: 'path', action: 'flag', path: { field: 'path', max_length: 2048 } },
        { name: 'referrer', action: 'flag', url: { field: 'referrer' } },
        { name: 'bytes', action: 'dead_letter', non_negative: { field: 'bytes' } },
        { name: 'api_errors', action: 'flag', condition: 'record.status < 500 || !record.path.startsWith("/api/")' },
      ],
    },
  ],
  validate(options, context) {
    const problems: OptionProblem[] = [];
    const seen = new Map<string, number>();
    options.rules.forEach((rule, i) => {
      const earlier = seen.get(rule.name);
      if (earlier !== undefined) {
        problems.push({
          path: ['rules', i, 'name'],
          message: `rule name \`${rule.name}\` is already used by rules[${earlier}]`,
          hint: 'names tell rules apart in dead-letter reasons, validation_rules, the summary and metrics',
        });
      } else seen.set(rule.name, i);
      if ('range' in rule && rule.range.min !== undefined && rule.range.max !== undefined) {
        if (rule.range.min > rule.range.max) {
          problems.push({
            path: ['rules', i, 'range'],
            message: `min ${rule.range.min} is above max ${rule.range.max}`,
          });
        }
      }
      const made = compileRule(rule, i, context.inputSchema ?? OPEN_RECORD_SCHEMA);
      if ('problems' in made) problems.push(...made.problems);
      const mismatch = context.inputSchema && typeMismatch(rule, i, context.inputSchema);
      if (mismatch) problems.push(mismatch);
    });
    return problems;
  },
  create: async (options, ctx) => new (await import('./validate.ts')).ValidateTransform(options, ctx),
});
