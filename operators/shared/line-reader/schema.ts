/** The option every source that splits bytes into lines (line-reader/lines.ts) takes, in one wording. */
export const maxLineBytesProperty = {
  type: 'integer',
  minimum: 16,
  maximum: 16777216,
  default: 65536,
  description:
    'Longest line kept whole, in bytes (without the newline). Longer lines are cut to this length and marked ' +
    '`truncated: true`, with their size as read in `line_bytes`; the rest of the line is dropped. Bounds ' +
    'memory per line.',
  examples: [65536, 1048576],
} as const;
