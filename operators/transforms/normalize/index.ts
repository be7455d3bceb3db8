import { defineTransform } from '../../../engine/operator.ts';
import { OPEN_RECORD_SCHEMA, type RecordSchema } from '../../../engine/record-schema.ts';
import { type NormalizeOptions, schema } from './schema.ts';
import { walkSteps } from './steps.ts';

export default defineTransform<typeof schema, NormalizeOptions>({
  type: 'normalize',
  stability: 'alpha',
  summary: 'Rename, cast, default, drop and compute (CEL) fields; lower-case hosts; decode URLs; endpoint templates',
  schema,
  accepts: ['any'],
  outputs: { default: 'any' },
  concurrent: false,
  outputSchemas(options, input): Readonly<Record<string, RecordSchema>> {
    return { default: walkSteps(options.steps, input).output };
  },
  // No `fields()`: the graph pass would check every name against the records reaching the stage, while a step
  // reads the records as the steps before it leave them. `validate` checks each name there (with the input's
  // schema for the first step), and says what became of a name an earlier step renamed or dropped.
  examples: [
    {
      steps: [
        { rename: { from: 'client_ip', to: 'ip' } },
        { lowercase_host: { field: 'vhost' } },
        { url: { field: 'path' } },
        { query: { field: 'query', to: 'query_params' } },
        { endpoint: { field: 'path', to: 'endpoint' } },
        { default: { field: 'referrer', value: '-' } },
        { compute: { field: 'kilobytes', expression: 'record.bytes / 1024' } },
        {
          compute: { field: 'slow', expression: 'record.request_time_ms > 250.0' },
          when: 'has(record.request_time_ms)',
        },
        { drop: { fields: ['user_agent'] } },
      ],
    },
    {
      steps: [
        { cast: { field: 'status', to: 'string', on_error: 'null' } },
        {
          endpoint: {
            field: 'path',
            to: 'endpoint',
            builtin: ['integer', 'uuid'],
            patterns: [{ regex: '[A-Z]{2}-\\d{4,}', placeholder: ':sku' }],
          },
        },
        { compute: { field: 'api', expression: 'record.endpoint.startsWith("/api/")', on_error: 'null' } },
      ],
    },
  ],
  validate(options, context) {
    return walkSteps(options.steps, context.inputSchema ?? OPEN_RECORD_SCHEMA).problems;
  },
  stateless: true,
  create: async (options, ctx) => new (await import('./normalize.ts')).NormalizeTransform(options, ctx),
});
