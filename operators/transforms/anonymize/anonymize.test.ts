import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import type { PortRecords } from '../../../engine/operator.ts';
import { deadLetter, type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import {
  DEAD_LETTER_SCHEMA,
  PERSONAL_DATA,
  RAW_LINE_SCHEMA,
  type RecordSchema,
} from '../../../engine/record-schema.ts';
import { createAjv } from '../../../engine/schema/ajv.ts';
import { recordingContext } from '../../../test/support/context.ts';
import { accessRecordSchema, emptyAccessRecord, errorLogRecordSchema } from '../../shared/log-records.ts';
import { columnType } from '../../sinks/postgres/columns.ts';
import { tableRecordSchema } from '../../sinks/postgres/record-schemas.ts';
import { anonymizeAddress, Pseudonymizer } from './addresses.ts';
import { AnonymizeTransform, Anonymizer } from './anonymize.ts';
import definition from './index.ts';
import type { AnonymizeOptions } from './schema.ts';
import { luhn, scrubAll, scrubText, type TextRule } from './text.ts';

const KEY = 'test-key-7f3c9a1e5b2d4f60';
const validate = createAjv().compile(definition.schema);

function options(patch: Record<string, unknown> = {}): AnonymizeOptions {
  const value = structuredClone(patch);
  if (!validate(value)) throw new Error(JSON.stringify(validate.errors));
  return value as unknown as AnonymizeOptions;
}

const access = (patch: Partial<Record<string, unknown>>): EtlRecord => ({ ...emptyAccessRecord(), ...patch });
const out1 = (ports: PortRecords): EtlRecord | undefined => ports.default?.[0];

describe('IP addresses', () => {
  const truncate = { mode: 'truncate', ipv4Prefix: 24, ipv6Prefix: 48 } as const;

  it('truncates IPv4 to /24 and IPv6 to /48 by default, IPv4-mapped IPv6 as IPv4', () => {
    expect(anonymizeAddress('203.0.113.77', truncate)).toBe('203.0.113.0');
    expect(anonymizeAddress('2a01:e0a:1f2:3b40:5d1c:9f2e:1a2b:3c4d', truncate)).toBe('2a01:e0a:1f2::');
    expect(anonymizeAddress('::ffff:198.51.100.9', truncate)).toBe('198.51.100.0');
    expect(anonymizeAddress('192.0.2.200', { ...truncate, ipv4Prefix: 16 })).toBe('192.0.0.0');
  });

  it('truncates as ipaddr.js computes networks, for any address and prefix', () => {
    fc.assert(
      fc.property(
        fc.ipV4(),
        fc.integer({ min: 0, max: 32 }),
        fc.ipV6(),
        fc.integer({ min: 0, max: 128 }),
        (v4, p4, v6, p6) => {
          const rule = { mode: 'truncate', ipv4Prefix: p4, ipv6Prefix: p6 } as const;
          expect(anonymizeAddress(v4, rule)).toBe(ipaddr.IPv4.networkAddressFromCIDR(`${v4}/${p4}`).toString());
          const parsed = ipaddr.IPv6.parse(v6);
          const expected = parsed.isIPv4MappedAddress()
            ? ipaddr.IPv4.networkAddressFromCIDR(`${parsed.toIPv4Address().toString()}/${p4}`).toString()
            : ipaddr.IPv6.networkAddressFromCIDR(`${v6}/${p6}`).toString();
          expect(anonymizeAddress(v6, rule)).toBe(expected);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('turns what is no address into null when truncating: a host name cannot be truncated', () => {
    expect(anonymizeAddress('client-42.dsl.example.net', truncate)).toBeNull();
    expect(anonymizeAddress('10.1', truncate)).toBeNull();
    expect(anonymizeAddress('unknown', truncate)).toBeNull();
  });

  it('pseudonymizes with a keyed HMAC: stable, prefixed with the key id, one pseudonym per address', () => {
    const rule = { ...truncate, mode: 'pseudonymize', pseudonymizer: new Pseudonymizer(KEY, 'k2026') } as const;
    const a = anonymizeAddress('2001:db8::1', rule);
    expect(a).toMatch(/^k2026:[A-Za-z0-9_-]{22}$/);
    expect(anonymizeAddress('2001:DB8:0:0::1', rule)).toBe(a);
    expect(anonymizeAddress('2001:db8::2', rule)).not.toBe(a);
    const rotated = { ...rule, pseudonymizer: new Pseudonymizer(`${KEY}-next`, 'k2027') };
    expect(anonymizeAddress('2001:db8::1', rotated)).toMatch(/^k2027:/);
    expect(anonymizeAddress('2001:db8::1', rotated)?.slice(6)).not.toBe(a?.slice(6));
    // The key is not in the pseudonymizer's printed form.
    expect(JSON.stringify(rule.pseudonymizer)).not.toContain(KEY);
  });

  it('truncates a block `address/prefix` to the shorter prefix, and pseudonymizes a single address as itself', () => {
    expect(anonymizeAddress('171.132.50.94/32', truncate)).toBe('171.132.50.0/24');
    expect(anonymizeAddress('171.132.0.0/16', truncate)).toBe('171.132.0.0/16');
    expect(anonymizeAddress('171.132.50.94/30', { ...truncate, ipv4Prefix: 20 })).toBe('171.132.48.0/20');
    expect(anonymizeAddress('2001:db8:1:2::7/128', truncate)).toBe('2001:db8:1::/48');
    expect(anonymizeAddress('2001:db8::/32', truncate)).toBe('2001:db8::/32');
    // Not a block: dropped when truncating, as an address that does not parse.
    for (const text of ['171.132.50.94/33', '171.132.50.94/', 'host/24', '1.2.3.4/x']) {
      expect(anonymizeAddress(text, truncate), text).toBeNull();
    }
    const rule = { ...truncate, mode: 'pseudonymize', pseudonymizer: new Pseudonymizer(KEY, 'k1') } as const;
    expect(anonymizeAddress('171.132.50.94/32', rule)).toBe(anonymizeAddress('171.132.50.94', rule));
    expect(anonymizeAddress('2001:DB8::7/128', rule)).toBe(anonymizeAddress('2001:db8::7', rule));
    const wide = anonymizeAddress('171.132.0.0/16', rule);
    expect(wide).toMatch(/^k1:/);
    expect(wide).not.toBe(anonymizeAddress('171.132.0.0', rule));
    expect(anonymizeAddress('171.132.0.0/16', { ...truncate, mode: 'drop' })).toBeNull();
    expect(anonymizeAddress('171.132.0.0/16', { ...truncate, mode: 'keep' })).toBe('171.132.0.0/16');
  });
});

describe('text', () => {
  const rule = new Anonymizer(options());
  const scrub = (text: string) => rule.scrub(text);

  it('scrubs query parameters by name and by pattern, in queries, request lines, referrers and path parameters', () => {
    expect(scrub('GET /login?user=7&password=hunter2&next=%2F HTTP/1.1')).toBe(
      'GET /login?user=7&password=[redacted]&next=%2F HTTP/1.1',
    );
    expect(scrub('access_token=eyJhbGciOi.x.y&page=2')).toBe('access_token=[redacted]&page=2');
    expect(scrub('https://shop.example/cart?X-Amz-Security-Token=FQoG&lang=fr')).toBe(
      'https://shop.example/cart?X-Amz-Security-Token=[redacted]&lang=fr',
    );
    // A value ends at `&`, `;`, `#` or a blank, not at `?` (a query value may hold one): more goes, never less.
    expect(scrub('/cart;jsessionid=0A1B2C3D?lang=fr')).toBe('/cart;jsessionid=[redacted]');
    expect(scrub('/cb?API%5FKEY=9f8e7d')).toBe('/cb?API%5FKEY=[redacted]');
  });

  it('scrubs e-mail addresses, also percent-encoded', () => {
    expect(scrub('/users/jane.doe+news@example.co.uk/profile')).toBe('/users/[email]/profile');
    expect(scrub('/unsubscribe?u=jane.doe%40example.com')).toBe('/unsubscribe?u=[email]');
  });

  it('scrubs card numbers that pass the Luhn check, and leaves other long numbers', () => {
    expect(luhn('4111 1111 1111 1111')).toBe(true);
    expect(luhn('4111 1111 1111 1112')).toBe(false);
    expect(scrub('/pay?n=4111-1111-1111-1111&x=1')).toBe('/pay?n=[card]&x=1');
    expect(scrub('/pay/5500%200000%200000%200004')).toBe('/pay/[card]');
    expect(scrub('/orders/4111111111111112')).toBe('/orders/4111111111111112');
  });

  it('scrubs phone numbers written as phone numbers, not ids', () => {
    expect(scrub('/call?to=%2B33612345678')).toBe('/call?to=[phone]');
    expect(scrub('/contact/+1 (555) 123-4567')).toBe('/contact/[phone]');
    expect(scrub('/q?s=06+12+34+56+78')).toBe('/q?s=[phone]');
    expect(scrub('/orders/123456789')).toBe('/orders/123456789');
    expect(scrub('/archive/2024-01-15')).toBe('/archive/2024-01-15');
  });

  it('treats addresses in text as the ip mode says, and leaves versions and times', () => {
    expect(scrub('https://203.0.113.9:8443/admin from 2001:db8:aa:bb::7 v1.2.3 at 12:30:45')).toBe(
      'https://203.0.113.0:8443/admin from 2001:db8:aa:: v1.2.3 at 12:30:45',
    );
    const drop = new Anonymizer(options({ ip: { mode: 'drop' } }));
    expect(drop.scrub('from 203.0.113.9')).toBe('from [ip]');
    const keepText = new Anonymizer(options({ scrub: { ips: false } }));
    expect(keepText.scrub('from 203.0.113.9')).toBe('from 203.0.113.9');
  });

  it('skips only text no rule would change (the first, cheap test is implied by every rule)', () => {
    const rules = (rule as unknown as { text: TextRule }).text;
    const token = fc.oneof(
      fc.stringMatching(/^[0-9]{1,19}$/),
      fc.constantFrom(
        ' ',
        '.',
        ':',
        '+',
        '-',
        '(',
        ')',
        '%20',
        '%2B',
        '%40',
        '@',
        '=',
        '&',
        '?',
        '/',
        '::',
        'ab',
        'x.com',
      ),
    );
    fc.assert(
      fc.property(
        fc.array(token, { maxLength: 12 }).map((parts) => parts.join('')),
        (text) => {
          expect(scrubText(text, rules)).toBe(scrubAll(text, rules));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('leaves text without personal data as it is', () => {
    const line = 'GET /static/app.js?v=3&lang=en HTTP/2.0';
    expect(scrub(line)).toBe(line);
  });
});

describe('records', () => {
  const record = access({
    client_ip: '198.51.100.23',
    forwarded_for: ['203.0.113.5', 'unknown', '10.0.0.2'],
    user: 'jane',
    ident: 'jd',
    request: 'GET /reset?email=jane%40example.com&t=8c1e HTTP/1.1',
    path: '/reset',
    query: 'email=jane%40example.com&t=8c1e',
    referrer: 'https://mail.example.com/?session=abc&from=jane.doe@example.com',
    extra: { cookie_sessionid: 'f00d', http_x_forwarded_for: '203.0.113.5, 10.0.0.2', connection: 12 },
    status: 200,
  });
  record[ORIGIN] = { source: 'logs', file: '/var/log/access.log', line: 3 };

  it('truncates, drops and scrubs by default, and keeps the rest and the origin', () => {
    const out = new Anonymizer(options()).record(record);
    expect(out).toMatchObject({
      client_ip: '198.51.100.0',
      forwarded_for: ['203.0.113.0', '10.0.0.0'],
      user: null,
      ident: null,
      request: 'GET /reset?email=[redacted]&t=8c1e HTTP/1.1',
      query: 'email=[redacted]&t=8c1e',
      referrer: 'https://mail.example.com/?session=[redacted]&from=[email]',
      extra: { cookie_sessionid: '[redacted]', http_x_forwarded_for: '203.0.113.0, 10.0.0.0', connection: 12 },
      status: 200,
    });
    expect(out[ORIGIN]).toEqual(record[ORIGIN]);
    // Records are never changed in place.
    expect(record.client_ip).toBe('198.51.100.23');
  });

  it('pseudonymizes addresses and users with the key, its id first', () => {
    const anonymizer = new Anonymizer(
      options({ ip: { mode: 'pseudonymize' }, user: { mode: 'pseudonymize' }, key: KEY, key_id: 'k1' }),
    );
    const out = anonymizer.record(record);
    expect(out.client_ip).toMatch(/^k1:/);
    expect(out.user).toMatch(/^k1:/);
    expect(out.forwarded_for).toHaveLength(3);
    expect(anonymizer.record(record)).toEqual(out);
    // Another run with the same key gives the same pseudonyms: they join across runs.
    expect(
      new Anonymizer(options({ ip: { mode: 'pseudonymize' }, key: KEY, key_id: 'k1' })).record(record).client_ip,
    ).toBe(out.client_ip);
  });

  it('anonymizes only the fields named when fields are given', () => {
    const out = new Anonymizer(options({ ip: { fields: ['client_ip'] }, user: { mode: 'keep' } })).record(record);
    expect(out.forwarded_for).toEqual(record.forwarded_for);
    expect(out.user).toBe('jane');
  });

  it('scrubs the dead letters it reads and sends them on its dead_letter port; the origin stays', async () => {
    const transform = new AnonymizeTransform(options(), recordingContext());
    const line = '198.51.100.23 - jane [10/Oct/2025:13:55:36 +0200] "GET /a?token=s3cr3t HTTP/1.1" 200';
    const raw: EtlRecord = { message: `${line} junk` };
    raw[ORIGIN] = { source: 'logs', file: '/var/log/access.log', line: 9, offset: 120 };
    const letter = deadLetter(raw, 'parse', 'no format fits: near 198.51.100.23');
    const ports = await transform.process([record, letter]);
    expect(ports.default).toHaveLength(1);
    expect(ports.dead_letter).toEqual([
      {
        ...letter,
        reason: 'no format fits: near 198.51.100.0',
        raw: '198.51.100.0 - - [10/Oct/2025:13:55:36 +0200] "GET /a?token=[redacted] HTTP/1.1" 200 junk',
      },
    ]);
    expect(ports.dead_letter?.[0]?.[ORIGIN]).toEqual(raw[ORIGIN]);
    // A record refused downstream is in `raw` as JSON: the record rules apply to it.
    const refused = deadLetter(record, 'geo', 'lookup failed');
    const [scrubbed] = (await transform.process([refused])).dead_letter ?? [];
    expect(JSON.parse(String(scrubbed?.raw))).toMatchObject({ client_ip: '198.51.100.0', user: null, ident: null });
    const dropRaw = new AnonymizeTransform(options({ dead_letters: 'drop_raw' }), recordingContext());
    expect((await dropRaw.process([letter])).dead_letter?.[0]?.raw).toBe('');
  });
});

describe('definition', () => {
  it('keeps the input schema, with the types its modes give the changed fields', () => {
    const out = definition.outputSchemas?.(options(), accessRecordSchema).default;
    expect(out?.properties?.client_ip).toEqual(accessRecordSchema.properties.client_ip);
    expect(out?.required).toEqual(accessRecordSchema.required);
    // A truncated address stays inet in PostgreSQL; a pseudonym is text.
    expect(columnType('client_ip', tableRecordSchema(undefined, out).properties?.client_ip ?? {})).toBe('inet');
    const pseudo = definition.outputSchemas?.(
      options({ ip: { mode: 'pseudonymize' }, key: KEY, key_id: 'k1' }),
      accessRecordSchema,
    ).default;
    expect(columnType('client_ip', tableRecordSchema(undefined, pseudo).properties?.client_ip ?? {})).toBe('text');
    expect(pseudo?.properties?.forwarded_for).toMatchObject({ type: ['array', 'null'], items: { type: 'string' } });
    expect(definition.outputSchemas?.(options(), errorLogRecordSchema).default?.properties?.client_ip).toEqual(
      errorLogRecordSchema.properties.client_ip,
    );
  });

  it('treats by default every field the input schema annotates as an address, and the records alike', () => {
    const range = { type: ['string', 'null'], [PERSONAL_DATA]: 'ip' } as const;
    const input = {
      ...accessRecordSchema,
      properties: { ...accessRecordSchema.properties, threat_range: range },
    } as RecordSchema;
    const keyed = options({ ip: { mode: 'pseudonymize' }, key: KEY, key_id: 'k1' });
    const out = definition.outputSchemas?.(keyed, input).default;
    expect(out?.properties?.threat_range?.description).toMatch(/^Pseudonym/);
    // Named fields replace the defaults, the annotated ones too.
    const named = definition.outputSchemas?.({ ...keyed, ip: { ...keyed.ip, fields: ['client_ip'] } }, input).default;
    expect(named?.properties?.threat_range).toEqual(range);
    const record = access({ client_ip: '171.132.50.94', threat_range: '171.132.50.94/32' });
    const run = (opts: AnonymizeOptions) =>
      out1(new AnonymizeTransform(opts, recordingContext({ inputSchema: input })).process([record]));
    expect(run(options())).toMatchObject({ client_ip: '171.132.50.0', threat_range: '171.132.50.0/24' });
    // Without the annotation (records from a stage that declares nothing), the field is not known to be one.
    expect(
      out1(new AnonymizeTransform(options(), recordingContext({ inputSchema: accessRecordSchema })).process([record])),
    ).toMatchObject({ threat_range: '171.132.50.94/32' });
  });

  it('declares the records of its non-dead-letter inputs on default', () => {
    const out = definition.outputSchemas?.(options(), RAW_LINE_SCHEMA, [
      { kind: 'access', schema: accessRecordSchema },
      { kind: 'dead_letter', schema: DEAD_LETTER_SCHEMA },
    ]).default;
    expect(out?.properties).not.toHaveProperty('raw');
    expect(out?.required).toEqual(accessRecordSchema.required);
  });

  it('refuses pseudonymize without a key, a key without its id, and a bad pattern', () => {
    const problems = (patch: Record<string, unknown>) =>
      (definition.validate?.(options(patch), { inputSchema: undefined }) ?? []).map((p) => [p.path, p.message]);
    expect(problems({ ip: { mode: 'pseudonymize' }, user: { mode: 'pseudonymize' } })).toEqual([
      [['ip', 'mode'], '`pseudonymize` needs `key`'],
      [['user', 'mode'], '`pseudonymize` needs `key`'],
    ]);
    expect(problems({ ip: { mode: 'pseudonymize' }, key: KEY })).toEqual([[['key'], '`key` needs `key_id`']]);
    expect(problems({ scrub: { param_patterns: ['ok', '(unclosed'] } })).toEqual([
      [['scrub', 'param_patterns', 1], expect.stringContaining('is not a regular expression')],
    ]);
  });

  it('names the fields its options list, for the graph pass', () => {
    expect(definition.fields?.(options({ ip: { fields: ['client_ip'] }, scrub: { fields: ['referer'] } }))).toEqual([
      { path: ['ip', 'fields', 0], field: 'client_ip' },
      { path: ['scrub', 'fields', 0], field: 'referer' },
    ]);
  });
});
