import type { FieldUse, OptionProblem } from '../../../engine/operator.ts';
import { defineTransform } from '../../../engine/operator.ts';
import { type FieldSchema, PERSONAL_DATA, type RecordSchema, withFields } from '../../../engine/record-schema.ts';
import { type ThreatIntelOptions, schema } from './schema.ts';

const THREATS_PORT = 'threats';

const defaults = {
  ip_field: 'client_ip',
  path_field: 'path',
  query_field: 'query',
  user_agent_field: 'user_agent',
  referrer_field: 'referrer',
  lists: [],
  reload: { watch: true, interval_seconds: 300 },
  signatures: { builtin: true, files: [], disable: [] },
};

const text = (description: string): FieldSchema => ({ type: ['string', 'null'], description });

/** The fields added, for these options: list fields only with lists, signature fields only with signatures. */
export function threatFields(options: ThreatIntelOptions): Record<string, FieldSchema> {
  const fields: Record<string, FieldSchema> = {
    threat_matched: {
      type: 'boolean',
      description: 'Whether the client address is in a list or the request matched a signature.',
    },
  };
  if (options.lists.length > 0) {
    fields.threat_lists = text(
      'The lists holding the client address, comma-separated (`firehol_level1,spamhaus_drop`); null: none.',
    );
    fields.threat_range = {
      ...text(
        'The most specific listed block holding the client address (`192.0.2.0/24`; the address itself, ' +
          '`192.0.2.7/32`, when it is listed alone); null: none.',
      ),
      // It may hold the client address itself: anonymize treats it as an address field by default.
      [PERSONAL_DATA]: 'ip',
    };
    fields.threat_range_note = text('The comment listed with that block (a Spamhaus SBL id); null: none.');
  }
  if (options.signatures.builtin || options.signatures.files.length > 0) {
    fields.threat_rules = text('The ids of the signatures the request matched, comma-separated; null: none.');
    fields.threat_categories = text(
      'Their categories, comma-separated (sqli, xss, traversal, rce, scanner, bad_agent, or your own); null: none.',
    );
  }
  if (options.abuseipdb) {
    fields.threat_score = {
      type: ['integer', 'null'],
      minimum: 0,
      maximum: 100,
      description:
        'AbuseIPDB abuse confidence score of the client address (0–100); null: not looked up (a private address, ' +
        'the daily quota spent, the circuit open, a failed call).',
    };
    fields.threat_reports = {
      type: ['integer', 'null'],
      minimum: 0,
      description: 'AbuseIPDB reports of the address within `max_age_days`; null when the score is.',
    };
  }
  return fields;
}

export default defineTransform<typeof schema, ThreatIntelOptions>({
  type: 'threat_intel',
  stability: 'alpha',
  summary: 'Flag requests from listed IPs (CIDR lists, longest-prefix match) or matching attack signatures',
  schema,
  accepts: ['access'],
  outputs: { default: 'access', [THREATS_PORT]: 'access' },
  // Adds its fields to the records themselves.
  changesRecords: true,
  // Each record that matched leaves on `default` and on `threats`.
  sharesRecords: true,
  outputSchemas(options, input): Readonly<Record<string, RecordSchema>> {
    const fields = threatFields(options);
    const output = withFields(input, fields, Object.keys(fields));
    return { default: output, [THREATS_PORT]: output };
  },
  fields(options): readonly FieldUse[] {
    const uses: FieldUse[] = [];
    if (options.lists.length > 0 || options.abuseipdb) uses.push({ path: ['ip_field'], field: options.ip_field });
    if (options.signatures.builtin || options.signatures.files.length > 0) {
      for (const key of ['path_field', 'query_field', 'user_agent_field', 'referrer_field'] as const) {
        const field = options[key];
        if (field !== null) uses.push({ path: [key], field });
      }
    }
    return uses;
  },
  examples: [
    { ...defaults },
    {
      ...defaults,
      lists: [
        { name: 'firehol_level1', path: 'lists/firehol_level1.netset' },
        { name: 'spamhaus_drop', path: 'lists/drop.txt' },
      ],
    },
    {
      ...defaults,
      lists: [{ name: 'blocked', path: '/etc/etl/blocked.txt' }],
      reload: { watch: false, interval_seconds: 3600 },
      signatures: { builtin: true, files: ['rules/our-rules.yaml'], disable: ['probe-cgi-bin'] },
      referrer_field: null,
    },
    {
      ...defaults,
      abuseipdb: {
        api_key: 'your-key',
        cache: 'cache',
        url: 'https://api.abuseipdb.com/api/v2/check',
        max_age_days: 90,
        min_score: 75,
        cache_ttl_seconds: 86400,
        requests_per_day: 1000,
        concurrency: 4,
        timeout_ms: 3000,
        breaker: { failure_percent: 50, min_calls: 5, reset_seconds: 60 },
      },
    },
  ],
  validate(options) {
    const problems: OptionProblem[] = [];
    const seen = new Map<string, number>();
    options.lists.forEach((list, i) => {
      const first = seen.get(list.name);
      if (first !== undefined) {
        problems.push({
          path: ['lists', i, 'name'],
          message: `list name \`${list.name}\` is already the name of list ${first + 1}`,
          hint: 'give each list its own name: it is what `threat_lists` reports',
        });
      } else seen.set(list.name, i);
    });
    const signatures = options.signatures.builtin || options.signatures.files.length > 0;
    if (!signatures && options.lists.length === 0 && !options.abuseipdb) {
      problems.push({
        path: [],
        message: 'nothing to look for: no lists, signatures off, no abuseipdb',
        hint: 'add `lists:`, or leave `signatures.builtin` on',
      });
    }
    return problems;
  },
  uses(options) {
    return options.abuseipdb ? [{ path: ['abuseipdb', 'cache'], name: options.abuseipdb.cache, type: 'redis' }] : [];
  },
  // Lists and signatures each instance loads; AbuseIPDB lookups share a Redis cache and a daily quota.
  statelessFor: (options) => !options.abuseipdb,
  concurrent: true,
  create: async (options, ctx) => new (await import('./threat-intel.ts')).ThreatIntelTransform(options, ctx),
});
