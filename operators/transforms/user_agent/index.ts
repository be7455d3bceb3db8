import { defineTransform } from '../../../engine/operator.ts';
import { withFields } from '../../../engine/record-schema.ts';
import { replacedFields } from '../../shared/added-fields.ts';
import { prefixedFields } from './fields.ts';
import { schema, type UserAgentOptions } from './schema.ts';

const defaults = {
  source_field: schema.properties.source_field.default,
  prefix: schema.properties.prefix.default,
  cache_size: schema.properties.cache_size.default,
};

export default defineTransform<typeof schema, UserAgentOptions>({
  type: 'user_agent',
  stability: 'beta',
  summary: 'Parse the User-Agent into browser, engine, OS and device, and flag bots with their name',
  schema,
  accepts: ['access'],
  outputs: { default: 'access' },
  // Adds its fields to the records themselves.
  changesRecords: true,
  // Every record gets every field (null when unknown): one shape, one column each.
  outputSchemas: (options, input) => {
    const fields = prefixedFields(options.prefix ?? 'ua_');
    return { default: withFields(input, fields, Object.keys(fields)) };
  },
  validate: (options, context) => replacedFields(Object.keys(prefixedFields(options.prefix ?? 'ua_')), context),
  fields: (options) => [{ path: ['source_field'], field: options.source_field ?? 'user_agent' }],
  examples: [{ ...defaults }, { ...defaults, prefix: 'agent_', cache_size: 0 }],
  // Each agent is parsed on its own; the cache only saves time.
  stateless: true,
  create: async (options, ctx) => new (await import('./user-agent.ts')).UserAgentTransform(options, ctx),
});
