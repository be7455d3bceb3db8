import type { FromSchema } from 'json-schema-to-ts';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/sources/stdin.json',
  type: 'object',
  additionalProperties: false,
  description:
    'Reads lines from standard input until it ends (`tail -F access.log | etl apply p.yaml`). Each line becomes ' +
    '`{ message }`; there is no checkpoint position, so a rerun reads whatever standard input then holds.',
  properties: {
    max_line_bytes: {
      type: 'integer',
      minimum: 16,
      maximum: 16777216,
      default: 65536,
      description:
        'Longest line kept whole, in bytes (without the newline). Longer lines are cut to this length and marked ' +
        '`truncated: true`, with their size as read in `line_bytes`; the rest of the line is dropped. Bounds ' +
        'memory per line.',
      examples: [65536, 1048576],
    },
  },
} as const;

export type StdinSourceOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
