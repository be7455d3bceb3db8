import type { FromSchema } from 'json-schema-to-ts';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/sinks/stdout.json',
  type: 'object',
  additionalProperties: false,
  description:
    'Writes records to standard output, one per line; fails the run when the reader goes away (`| head`, exit 141), so that a rerun writes the rest.',
  properties: {
    format: {
      type: 'string',
      enum: ['jsonl', 'text'],
      default: 'jsonl',
      description: '`jsonl`: one JSON object per line. `text`: the `message` field when it is a string, else JSON.',
      examples: ['text'],
    },
  },
  examples: [{ format: 'jsonl' }],
} as const;

export type StdoutSinkOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
