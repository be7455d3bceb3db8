import type { FromSchema } from 'json-schema-to-ts';

const fieldList = (what: string, defaults: string) =>
  ({
    type: 'array',
    minItems: 1,
    uniqueItems: true,
    description: `Fields holding ${what}. Default: ${defaults}, those the records carry. Fields named here must exist.`,
    items: { type: 'string', minLength: 1, description: 'A field of the records reaching the stage.' },
  }) as const;

export const DEFAULT_IP_FIELDS = ['client_ip', 'forwarded_for'] as const;
export const DEFAULT_USER_FIELDS = ['user', 'ident'] as const;
// `message`: the text of error-log records, and the line itself when anonymize reads raw lines.
export const DEFAULT_TEXT_FIELDS = ['request', 'path', 'query', 'referrer', 'extra', 'message'] as const;

/** Parameter names whose values are scrubbed by default, compared without case. */
export const DEFAULT_PARAMS = [
  'email',
  'e-mail',
  'mail',
  'token',
  'access_token',
  'refresh_token',
  'id_token',
  'auth',
  'authorization',
  'password',
  'passwd',
  'pwd',
  'pass',
  'secret',
  'client_secret',
  'session',
  'sessionid',
  'session_id',
  'sid',
  'phpsessid',
  'jsessionid',
  'api_key',
  'apikey',
  'key',
  'code',
  'signature',
  'sig',
  'phone',
  'tel',
] as const;

/** Patterns (case-insensitive, anywhere in the name) whose parameters are scrubbed by default. */
export const DEFAULT_PARAM_PATTERNS = [
  'token',
  'passw',
  'secret',
  'session',
  'api[_-]?key',
  'e-?mail',
  'auth',
] as const;

export const schema = {
  $id: 'https://etl.dev/schemas/operators/transforms/anonymize.json',
  type: 'object',
  additionalProperties: false,
  description:
    'Removes personal data (GDPR): truncates or pseudonymizes IP addresses, drops or pseudonymizes user names, ' +
    'scrubs query parameters, e-mail addresses, phone and card numbers from URLs, and scrubs the dead letters it reads.',
  properties: {
    ip: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'IP address fields.',
      properties: {
        mode: {
          type: 'string',
          enum: ['truncate', 'pseudonymize', 'drop', 'keep'],
          default: 'truncate',
          description:
            '`truncate`: keep the network (`ipv4_prefix`, `ipv6_prefix`), zero the host bits; a value that is no ' +
            'address becomes null. `pseudonymize`: `<key_id>:<HMAC>` with `key`. `drop`: null. `keep`: unchanged.',
        },
        fields: fieldList(
          'IP addresses (a string, or a list of strings such as `forwarded_for`)',
          '`client_ip`, `forwarded_for`',
        ),
        ipv4_prefix: {
          type: 'integer',
          minimum: 0,
          maximum: 32,
          default: 24,
          description: 'Bits of an IPv4 address kept by `truncate`.',
        },
        ipv6_prefix: {
          type: 'integer',
          minimum: 0,
          maximum: 128,
          default: 48,
          description: 'Bits of an IPv6 address kept by `truncate`.',
        },
      },
    },
    user: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'User name fields.',
      properties: {
        mode: {
          type: 'string',
          enum: ['drop', 'pseudonymize', 'keep'],
          default: 'drop',
          description: '`drop`: null. `pseudonymize`: `<key_id>:<HMAC>` with `key`. `keep`: unchanged.',
        },
        fields: fieldList('user names', '`user`, `ident`'),
      },
    },
    scrub: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'Free-text fields (URLs, request lines) scrubbed of query parameters and personal values.',
      properties: {
        fields: fieldList(
          'URLs and text; in an object field (`extra`) every string value, and every value whose key is a sensitive parameter name',
          '`request`, `path`, `query`, `referrer`, `extra`, `message`',
        ),
        params: {
          type: 'array',
          default: [...DEFAULT_PARAMS],
          description: 'Query parameter names (compared without case) whose values become `[redacted]`.',
          items: { type: 'string', minLength: 1, description: 'A parameter name.' },
        },
        param_patterns: {
          type: 'array',
          default: [...DEFAULT_PARAM_PATTERNS],
          description:
            'Regular expressions (case-insensitive, matched anywhere in the name) of parameter names whose values ' +
            'become `[redacted]`.',
          items: { type: 'string', minLength: 1, description: 'A JavaScript regular expression.' },
        },
        emails: { type: 'boolean', default: true, description: 'Replace e-mail addresses by `[email]`.' },
        phones: { type: 'boolean', default: true, description: 'Replace phone numbers by `[phone]`.' },
        cards: {
          type: 'boolean',
          default: true,
          description: 'Replace card numbers (13–19 digits passing the Luhn check) by `[card]`.',
        },
        ips: {
          type: 'boolean',
          default: true,
          description: 'Treat IP addresses found in the text as `ip.mode` says (`[ip]` when it drops them).',
        },
      },
    },
    key: {
      type: 'string',
      minLength: 16,
      writeOnly: true,
      description:
        // biome-ignore lint/suspicious/noTemplateCurlyInString: the description shows the interpolation syntax
        'The HMAC key of `pseudonymize`, from the environment: `key: ${secret:ANONYMIZE_KEY}` (masked in every ' +
        'message). At least 16 characters; 32 random bytes (`openssl rand -base64 32`) are best.',
    },
    key_id: {
      type: 'string',
      pattern: '^[A-Za-z0-9_-]{1,32}$',
      description:
        'Names the key; it prefixes every pseudonym (`k2026:…`), so that a rotated key is visible in the data.',
    },
    dead_letters: {
      type: 'string',
      enum: ['scrub', 'drop_raw'],
      default: 'scrub',
      description:
        'Dead letters read by this stage leave on its `dead_letter` port: `scrub` applies the text rules to their ' +
        '`raw` and `reason`; `drop_raw` empties `raw` (the origin still points at the line in the source).',
    },
  },
} as const;

export type AnonymizeOptions = FromSchema<typeof schema, { keepDefaultedPropertiesOptional: false }>;
