import type { FromSchema } from 'json-schema-to-ts';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/sinks/blackhole.json',
  type: 'object',
  additionalProperties: false,
  description: 'Counts records and drops them: for benchmarks and for measuring everything upstream of a sink.',
  properties: {
    print_interval_seconds: {
      type: 'integer',
      minimum: 1,
      description: 'Log the count and rate this often; omit for silence.',
      examples: [5],
    },
  },
  examples: [{ print_interval_seconds: 5 }],
} as const;

export type BlackholeSinkOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
