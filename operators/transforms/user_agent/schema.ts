import type { FromSchema } from 'json-schema-to-ts';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/transforms/user_agent.json',
  type: 'object',
  additionalProperties: false,
  description:
    'Parses each record’s User-Agent into browser, engine, operating system and device, and tells bots (search ' +
    'engines, monitoring, scripts, headless browsers) with their name, as flat prefixed fields (`ua_browser`, ' +
    '`ua_is_bot`, …). Answers are cached per agent string.',
  properties: {
    source_field: {
      type: 'string',
      minLength: 1,
      default: 'user_agent',
      description: 'The field holding the User-Agent string.',
      examples: ['user_agent'],
    },
    prefix: {
      type: 'string',
      pattern: '^[a-z][a-z0-9_]*$',
      default: 'ua_',
      description: 'Prefix of the added fields: `ua_` gives `ua_browser`, `ua_os`, `ua_is_bot`, …',
      examples: ['ua_', 'agent_'],
    },
    cache_size: {
      type: 'integer',
      minimum: 0,
      maximum: 10000000,
      default: 20000,
      description:
        'Distinct agent strings whose answer is kept in memory (least recently used go first); 0 for none. ' +
        'Real logs repeat a few thousand agents: the hit ratio is reported as `etl_user_agent_cache_hit_ratio`.',
      examples: [20000],
    },
  },
} as const;

export type UserAgentOptions = FromSchema<typeof schema>;
