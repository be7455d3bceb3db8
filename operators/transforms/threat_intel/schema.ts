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
    abuseipdb: {
      type: 'object',
      additionalProperties: false,
      required: ['api_key', 'cache'],
      description:
        'Look client addresses up in AbuseIPDB (`/api/v2/check`) too; off unless given. Answers are cached in a ' +
        '`redis` resource, calls are held to `requests_per_day` (shared through Redis by every stage using the ' +
        'key) and stop for a while after repeated failures (circuit breaker); an address not looked up gets a ' +
        'null score. Private and reserved addresses are never sent.',
      properties: {
        api_key: {
          type: 'string',
          minLength: 1,
          // biome-ignore lint/suspicious/noTemplateCurlyInString: the pipeline syntax for a secret, shown to users
          description: 'The API key; write `${secret:ABUSEIPDB_KEY}` so that it is never printed.',
        },
        cache: {
          type: 'string',
          minLength: 1,
          description: 'The `redis` resource (under `spec.resources`) holding answers and the daily count.',
        },
        url: {
          type: 'string',
          format: 'uri',
          default: 'https://api.abuseipdb.com/api/v2/check',
          description: 'The check endpoint.',
        },
        max_age_days: {
          type: 'integer',
          minimum: 1,
          maximum: 365,
          default: 90,
          description: 'Reports older than this are not counted (`maxAgeInDays`).',
        },
        min_score: {
          type: 'integer',
          minimum: 0,
          maximum: 100,
          default: 75,
          description: 'An abuse confidence score at least this high sets `threat_matched`.',
        },
        cache_ttl_seconds: {
          type: 'integer',
          minimum: 1,
          default: 86400,
          description: 'How long an answer is kept.',
        },
        requests_per_day: {
          type: 'integer',
          minimum: 1,
          default: 1000,
          description:
            'Calls allowed a day (the free plan allows 1000); past it addresses get a null score until the day ends.',
        },
        concurrency: {
          type: 'integer',
          minimum: 1,
          maximum: 64,
          default: 4,
          description: 'Calls in flight at once.',
        },
        timeout_ms: {
          type: 'integer',
          minimum: 100,
          default: 3000,
          description: 'A call taking longer fails (and counts towards opening the circuit).',
        },
        breaker: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'When calls stop after failures, and when they are tried again.',
          properties: {
            failure_percent: {
              type: 'integer',
              minimum: 1,
              maximum: 100,
              default: 50,
              description: 'The circuit opens when this share of the calls of the last 10 s failed…',
            },
            min_calls: {
              type: 'integer',
              minimum: 1,
              default: 5,
              description: '…and at least this many calls were made in them.',
            },
            reset_seconds: {
              type: 'number',
              exclusiveMinimum: 0,
              default: 60,
              description: 'Once open, one call is tried after this long; success closes the circuit.',
            },
          },
        },
      },
    },
  },
} as const;

export type ThreatIntelOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
