/**
 * Property: for random format strings built from the supported directives and random records, parsing
 * what the formatter (the servers' writing rules) produces gives the record back.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type AccessRecord, emptyAccessRecord } from '../../../shared/log-records.ts';
import { applyRequest } from '../request.ts';
import { type FieldKind, K, type Token } from './fields.ts';
import { Formatter } from './formatter.ts';
import { TrustedProxies } from '../forwarded.ts';
import { BUILTIN_TEMPLATES } from './builtin.ts';
import { compileTemplate } from './index.ts';
import type { TemplateFormat } from './template.ts';

// Bare pieces sit between separators; quoted pieces are written inside "…" and may hold any text.
const APACHE_BARE = [
  '%h',
  '%a',
  '%{c}a',
  '%A',
  '%l',
  '%u',
  '%>s',
  '%s',
  '%b',
  '%B',
  '%D',
  '%T',
  '%{ms}T',
  '%v',
  '%V',
  '%p',
  '%{remote}p',
  '%k',
  '%X',
  '%I',
  '%O',
  '%L',
  '%P',
  '%{tid}P',
  '%{UNIQUE_ID}e',
  '%{ratio}n',
  '%S',
  '%m',
  '%U%q',
  '%H',
  '%f',
  '%%',
];
const APACHE_QUOTED = ['%r', '%{Referer}i', '%{User-Agent}i', '%{X-Forwarded-For}i', '%{Content-Type}o', '%{sid}C'];
const APACHE_TIMES = [
  '%t',
  '[%{%d/%b/%Y:%H:%M:%S}t.%{msec_frac}t %{%z}t]',
  '%{begin:%Y-%m-%dT%H:%M:%S%z}t',
  '%{sec}t',
  '%{msec}t',
  '%{end:usec}t',
  '[%{%a %b %e %H:%M:%S %Y}t]',
  '%{%A, %d %B %y %T}t.%{usec_frac}t',
];
const NGINX_BARE = [
  '$remote_addr',
  '$remote_user',
  '$status',
  '$body_bytes_sent',
  '$bytes_sent',
  '$request_length',
  '$request_time',
  '$upstream_addr',
  '$upstream_status',
  '$upstream_response_time',
  '$host',
  '$server_name',
  '$server_port',
  '$scheme',
  '$connection',
  '$connection_requests',
  '$pipe',
  '$request_id',
  '$request_method',
  '$request_uri',
  '$uri$is_args$args',
  '$server_protocol',
  '$upstream_cache_status',
];
const NGINX_QUOTED = [
  '$request',
  '$http_referer',
  '$http_user_agent',
  '$http_x_forwarded_for',
  '$sent_http_content_type',
];
const NGINX_TIMES = ['[$time_local]', '$time_iso8601', '$msec'];
// ", " and " : " are left out: nginx upstream lists use them inside a value.
const SEPARATORS = [' ', ' | ', '\t', ' - ', ' ; '];

interface Case {
  readonly format: TemplateFormat;
  readonly text: string;
}

const ctx = { timezone: 'UTC', customVariables: [] };

function formatArb(dialect: 'apache' | 'nginx', escapeMode: 'default' | 'json'): fc.Arbitrary<Case> {
  const bare = dialect === 'apache' ? APACHE_BARE : NGINX_BARE;
  const quoted = dialect === 'apache' ? APACHE_QUOTED : NGINX_QUOTED;
  const times = dialect === 'apache' ? APACHE_TIMES : NGINX_TIMES;
  const pieces = [...bare, ...quoted.map((q) => `"${q}"`)];
  return fc
    .tuple(
      fc.shuffledSubarray(pieces, { minLength: 1, maxLength: 12 }),
      fc.option(fc.constantFrom(...times), { nil: undefined }),
      fc.nat(),
      fc.array(fc.constantFrom(...SEPARATORS), { minLength: 13, maxLength: 13 }),
    )
    .map(([chosen, time, at, seps]) => {
      const list = [...chosen];
      if (time !== undefined) list.splice(at % (list.length + 1), 0, time);
      if (!list.some((p) => p !== '%%')) list.push('%h');
      const text = list.map((p, i) => (i === 0 ? p : (seps[i] as string) + p)).join('');
      const spec = dialect === 'apache' ? { apache: text } : { nginx: text, escape: escapeMode };
      const format = compileTemplate(`${dialect} format`, spec, ctx);
      return { format, text, [fc.toStringMethod]: () => JSON.stringify(text) };
    });
}

// Not starting with `:`: after an upstream list, ` : x` would read as one more upstream group.
const bareText = fc.stringMatching(/^[A-Za-z0-9._/@+=~][A-Za-z0-9._:/@+=~]{0,11}$/);
/** Any Unicode text, control characters, quotes and backslashes included. */
const anyText = (json: boolean) =>
  fc
    .string({
      unit: fc.oneof(
        fc.constantFrom('"', '\\', '\t', '\n', '\u0000', 'é', '€', '😀', ' '),
        fc.string({ unit: 'binary', maxLength: 1 }),
      ),
      maxLength: 30,
    })
    .filter((s) => s !== '-' && !(json && s === ''));
const segment = fc.stringMatching(/^[A-Za-z0-9._~%-]{0,8}$/);
const path = fc.array(segment, { minLength: 1, maxLength: 4 }).map((segs) => `/${segs.join('/')}`);
const query = fc.option(fc.stringMatching(/^[A-Za-z0-9=&%._~]{0,12}$/), { nil: null });
const count = fc.option(fc.nat({ max: 2 ** 40 }), { nil: null });
const seconds = fc.integer({ min: 0, max: 99_999 }).map((ms) => (ms / 1000).toFixed(3));
const list = <T>(item: fc.Arbitrary<T>) =>
  fc
    .array(fc.tuple(item, fc.constantFrom(', ', ' : ')), { minLength: 1, maxLength: 3 })
    .map((items) => items.map(([v, sep], i) => (i === 0 ? '' : sep) + String(v)).join(''));

function kindsOf(format: TemplateFormat): Set<FieldKind> {
  const kinds = new Set<FieldKind>();
  for (const tok of format.tokens as Token[]) if (tok.type === 'field') kinds.add(tok.kind);
  return kinds;
}

function extrasOf(format: TemplateFormat): Map<string, FieldKind> {
  const extras = new Map<string, FieldKind>();
  for (const tok of format.tokens) if (tok.type === 'field' && tok.key !== '') extras.set(tok.key, tok.kind);
  return extras;
}

const REQUEST_PARTS: FieldKind[] = [K.METHOD, K.PATH, K.QUERY_Q, K.ARGS, K.REQUEST_URI, K.PROTOCOL];

/** A record the format can carry: fields it lacks are null, times and durations at its precision. */
function recordArb(c: Case): fc.Arbitrary<AccessRecord> {
  const kinds = kindsOf(c.format);
  const fields = c.format.fields();
  const json = c.format.escape === 'json';
  const has = (k: FieldKind) => kinds.has(k);
  const msPrecision = [K.TIME_MSEC, K.T_MSEC_FRAC, K.T_USEC_FRAC, K.T_EPOCH_MS, K.T_EPOCH_US].some(has);
  const durationQuantumUs = has(K.DURATION_S) ? 1_000_000 : has(K.DURATION_MS) || has(K.DURATION_S_FRAC) ? 1000 : 1;
  const bareParts = REQUEST_PARTS.some(has);
  const composed = fc
    .tuple(
      fc.constantFrom('GET', 'POST', 'HEAD', 'OPTIONS', 'PROPFIND'),
      path,
      query,
      fc.constantFrom('HTTP/1.0', 'HTTP/1.1', 'HTTP/2.0'),
    )
    .map(([m, p, q, v]) => `${m} ${p}${q === null ? '' : `?${q}`} ${v}`);
  const request = bareParts ? fc.option(composed, { nil: null }) : fc.oneof(composed, anyText(json), fc.constant(null));
  const extraArbs: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [key, kind] of extrasOf(c.format)) {
    const quoted = quotedKeys.has(key);
    extraArbs[key] =
      kind === K.EXTRA_INT
        ? fc.option(fc.nat({ max: 65535 }), { nil: null })
        : key === 'connection_status'
          ? fc.option(fc.constantFrom('X', '+'), { nil: null })
          : fc.option(quoted ? anyText(json) : bareText, { nil: null });
  }
  return fc
    .record({
      client_ip: fc.option(fc.oneof(fc.ipV4(), fc.ipV6()), { nil: null }),
      ident: fc.option(bareText, { nil: null }),
      user: fc.option(bareText, { nil: null }),
      seconds: fc.integer({ min: 946_684_800, max: 2_145_916_799 }),
      millis: fc.integer({ min: 0, max: 999 }),
      offset: fc.constantFrom(-720, -420, -210, 0, 60, 330, 345, 840),
      request,
      status: fc.option(fc.integer({ min: 100, max: 599 }), { nil: null }),
      bytes: count,
      bytes_sent: count,
      bytes_received: count,
      referrer: fc.option(anyText(json), { nil: null }),
      user_agent: fc.option(anyText(json), { nil: null }),
      duration_us: fc.option(fc.nat({ max: 10 ** 10 }), { nil: null }),
      upstream_addr: fc.option(list(fc.tuple(fc.ipV4(), fc.nat({ max: 65535 })).map(([ip, port]) => `${ip}:${port}`)), {
        nil: null,
      }),
      upstream_status: fc.option(list(fc.integer({ min: 100, max: 599 })), { nil: null }),
      // A lone `-` is how nginx writes "no upstream": that is null, covered by the option.
      upstream_times: fc.option(
        list(fc.oneof(seconds, fc.constant('-'))).filter((t) => t !== '-'),
        { nil: null },
      ),
      vhost: fc.option(bareText, { nil: null }),
      port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: null }),
      extra: fc.record(extraArbs),
    })
    .map((g) => {
      const rec = emptyAccessRecord();
      const set = <F extends keyof AccessRecord>(field: F, value: AccessRecord[F]) => {
        if (fields.has(field)) rec[field] = value;
      };
      set('client_ip', g.client_ip);
      set('ident', g.ident);
      set('user', g.user);
      if (fields.has('timestamp')) {
        rec.timestamp = new Date(g.seconds * 1000 + (msPrecision ? g.millis : 0)).toISOString();
      }
      set('timestamp_offset_minutes', g.offset);
      if (fields.has('request')) applyRequest(rec, g.request);
      else {
        const parts = emptyAccessRecord();
        applyRequest(parts, g.request);
        set('method', parts.method);
        set('path', parts.path);
        set('query', parts.query);
        set('protocol', parts.protocol);
      }
      set('status', g.status);
      set('bytes', g.bytes);
      set('bytes_sent', g.bytes_sent);
      set('bytes_received', g.bytes_received);
      set('referrer', g.referrer);
      set('user_agent', g.user_agent);
      const us = g.duration_us === null ? null : Math.floor(g.duration_us / durationQuantumUs) * durationQuantumUs;
      set('request_time_ms', us === null ? null : us / 1000);
      set('upstream_addr', g.upstream_addr);
      set('upstream_status', g.upstream_status);
      set('upstream_response_time', g.upstream_times);
      if (fields.has('upstream_response_time_ms') && g.upstream_times !== null) {
        const items = g.upstream_times.split(/, | : /).filter((t) => t !== '-');
        rec.upstream_response_time_ms =
          items.length === 0 ? null : items.reduce((sum, t) => sum + Math.round(Number(t) * 1000), 0);
      }
      set('vhost', g.vhost);
      set('port', g.port);
      rec.extra = { ...g.extra };
      return rec;
    });
}

/** Extra keys whose pieces are quoted in the catalogues above. */
const quotedKeys = new Set(['http_x_forwarded_for', 'sent_http_content_type', 'cookie_sid']);

describe('format → parse round trip', () => {
  for (const [dialect, escapeMode] of [
    ['apache', 'default'],
    ['nginx', 'default'],
    ['nginx', 'json'],
  ] as const) {
    it(`gives the record back for random ${dialect} formats (escape=${escapeMode})`, () => {
      fc.assert(
        fc.property(
          formatArb(dialect, escapeMode).chain((c) => fc.tuple(fc.constant(c), recordArb(c))),
          ([c, rec]) => {
            const line = new Formatter(c.format).format(rec);
            const parsed = c.format.parse(line, line.length, false);
            expect(parsed, `${c.text}\n${line}\n${c.format.failure()}`).toEqual(rec);
          },
        ),
        { numRuns: 400 },
      );
    });
  }
});

describe('compiled parser', () => {
  it('agrees with the interpreter on every line, good or broken, strict or lenient', () => {
    const edit = fc.tuple(fc.nat(), fc.nat({ max: 3 }), fc.string({ unit: 'binary', maxLength: 3 }));
    const formats = fc
      .constantFrom(['apache', 'default'] as const, ['nginx', 'default'] as const, ['nginx', 'json'] as const)
      .chain(([dialect, escapeMode]) => formatArb(dialect, escapeMode));
    fc.assert(
      fc.property(
        formats.chain((c) => fc.tuple(fc.constant(c), recordArb(c))),
        fc.array(edit, { maxLength: 3 }),
        fc.boolean(),
        ([c, rec], edits, lenient) => {
          let line = new Formatter(c.format).format(rec);
          // Broken copies too: characters replaced, dropped or added at random places.
          for (const [at, cut, insert] of edits) {
            const i = at % (line.length + 1);
            line = line.slice(0, i) + insert + line.slice(i + cut);
          }
          const compiled = c.format.parse(line, line.length, lenient);
          const compiledFailure = compiled === null ? c.format.failure() : '';
          const interpreted = c.format.parseInterpreted(line, line.length, lenient);
          expect(compiled, line).toEqual(interpreted);
          if (interpreted === null) expect(compiledFailure).toBe(c.format.failure());
          const tolerant = c.format.tolerantVariant();
          if (tolerant !== undefined) {
            expect(tolerant.parse(line, line.length, false), line).toEqual(
              tolerant.parseInterpreted(line, line.length, false),
            );
          }
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('agrees with the interpreter on client-address lists, hosts, bare dashes and appended fields', () => {
    const ctx = { timezone: 'UTC', customVariables: [], trusted: new TrustedProxies(['10.0.0.0/8', 'fd00::/8']) };
    const formats = [
      compileTemplate('combined', { apache: BUILTIN_TEMPLATES.combined.format }, ctx),
      compileTemplate('nginx_combined', { nginx: BUILTIN_TEMPLATES.nginx_combined.format }, ctx),
      compileTemplate('nginx_main', { nginx: BUILTIN_TEMPLATES.nginx_main.format }, ctx),
    ];
    const variants = [...formats, ...formats.map((f) => f.tolerantVariant() as TemplateFormat)];
    const piece = fc.constantFrom(
      '203.0.113.7',
      '10.0.0.1',
      'fd00::1',
      '[2001:db8::1]:443',
      'example.com',
      'example.com:80',
      ', ',
      ',',
      ' ',
      '"',
      '-',
      'unknown',
    );
    const tail = fc.constantFrom(
      '',
      ' "-" 0.005 0.004',
      ' "203.0.113.9, 10.0.0.2"',
      ' 89 0.001 [x] 172.17.0.5:8080 59 0.000 200 ab12',
      ' rt=0.250 urt="0.1"',
      ' "unclosed',
    );
    const line = fc
      .tuple(
        fc.array(piece, { minLength: 1, maxLength: 6 }),
        fc.constantFrom('- - ', '- alice ', 'x - '),
        fc.constantFrom('"-" "curl/8"', '- -', '"http://a/" -', '- "ua"'),
        tail,
      )
      .map(
        ([address, who, refAgent, rest]) =>
          `${address.join('')} ${who}[10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 5 ${refAgent}${rest}`,
      );
    fc.assert(
      fc.property(fc.constantFrom(...variants), line, (format, text) => {
        const compiled = format.parse(text, text.length, false);
        const compiledFailure = compiled === null ? format.failure() : '';
        expect(compiled, text).toEqual(format.parseInterpreted(text, text.length, false));
        if (compiled === null) expect(compiledFailure).toBe(format.failure());
      }),
      { numRuns: 1500 },
    );
  });
});
