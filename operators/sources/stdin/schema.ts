import type { FromSchema } from 'json-schema-to-ts';
import { maxLineBytesProperty } from '../../shared/line-reader/schema.ts';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/sources/stdin.json',
  type: 'object',
  additionalProperties: false,
  description:
    'Reads lines from standard input until it ends (`tail -F access.log | etl apply p.yaml`). Each line becomes ' +
    '`{ message }`; there is no checkpoint position, so a rerun reads whatever standard input then holds.',
  properties: {
    max_line_bytes: maxLineBytesProperty,
  },
} as const;

export type StdinSourceOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
