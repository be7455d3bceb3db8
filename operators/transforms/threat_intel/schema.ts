import type { FromSchema } from 'json-schema-to-ts';

const fieldOption = (part: string, fallback: string) =>
  ({
    type: ['string', 'null'],
    minLength: 1,
    default: fallback,
    description: `The field holding the request's ${part}, read by the signatures; null: signatures never read it.`,
    examples: [fallback],
  }) as const;

export const schema = {
  $id: 'https://etl.dev/schemas/operators/transforms/threat_intel.json',
  type: 'object',
  additionalProperties: false,
  description:
    'Marks requests from listed addresses (local IP/CIDR block lists, longest-prefix match) and requests matching ' +
    'attack signatures (SQL injection, XSS, path traversal, scanner probes, hostile agents): `threat_*` fields on ' +
    'every record, and the matched records again on the `threats` port for alerting.',
  properties: {
    ip_field: {
      type: 'string',
      minLength: 1,
      default: 'client_ip',
      description:
        'The field holding the client address looked up in the lists (IPv4 or IPv6; anything else matches no list).',
      examples: ['client_ip'],
    },
    path_field: fieldOption('path (without the query string)', 'path'),
    query_field: fieldOption('query string', 'query'),
    user_agent_field: fieldOption('User-Agent header', 'user_agent'),
    referrer_field: fieldOption('Referer header', 'referrer'),
    lists: {
      type: 'array',
      default: [],
      description:
        'Local IP block lists: one address or CIDR block per line with `#` comments (plain lists, FireHOL ' +
        '`.netset`), Spamhaus DROP text (`; SBL…` comments) or JSON lines. Relative paths resolve against the ' +
        'directory etl was started in.',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'path'],
        description: 'One list: the name it is reported by, and its file.',
        properties: {
          name: {
            type: 'string',
            pattern: '^[a-z0-9][a-z0-9_.-]*$',
            description: 'Named in `threat_lists` when an address is in it.',
          },
          path: { type: 'string', minLength: 1, description: 'The list file.' },
        },
      },
      examples: [[{ name: 'firehol_level1', path: 'lists/firehol_level1.netset' }]],
    },
    reload: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'When list files are read again (a reload swaps the new list in between two batches).',
      properties: {
        watch: {
          type: 'boolean',
          default: true,
          description: 'Read a list again as soon as its file changes (also when it is replaced by a rename).',
        },
        interval_seconds: {
          type: 'integer',
          minimum: 0,
          default: 300,
          description:
            'Also check each file’s size and modification time this often, for file systems that send no change ' +
            'events (NFS); 0: never.',
        },
      },
    },
    signatures: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'Request signatures: the bundled rules (signatures.yaml in the operator folder) and your own.',
      properties: {
        builtin: { type: 'boolean', default: true, description: 'Use the bundled rules.' },
        files: {
          type: 'array',
          default: [],
          description:
            'Rule files of the bundled file’s shape; a rule with the id of an earlier one replaces it. Read at start: ' +
            'a malformed rule fails the start, naming its file and line.',
          items: { type: 'string', minLength: 1, description: 'A YAML rule file.' },
        },
        disable: {
          type: 'array',
          default: [],
          description: 'Ids of rules to turn off (an id no rule has fails the start).',
          items: { type: 'string', minLength: 1, description: 'A rule id, e.g. `probe-cgi-bin`.' },
        },
      },
    },
  },
} as const;

export type ThreatIntelOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
