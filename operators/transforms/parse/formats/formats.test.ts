/**
 * Fixtures written from the Apache mod_log_config and nginx ngx_http_log_module / variables
 * documentation, one directive or variable at a time, and real-world oddities.
 */
import { describe, expect, it } from 'vitest';
import { fixture } from '../test-support.ts';
import { compileAccess, type FormatSpec } from './index.ts';

const ctx = { timezone: 'UTC', customVariables: ['geoip2_country'] };

function parse(spec: FormatSpec, line: string) {
  const parser = compileAccess(spec, ctx);
  const rec = parser.parse(line, line.length, false) ?? parser.parse(line, line.length, true);
  if (rec === null) throw new Error(parser.failure());
  return rec;
}

function reject(spec: FormatSpec, line: string): string {
  const parser = compileAccess(spec, ctx);
  expect(parser.parse(line, line.length, false)).toBeNull();
  expect(parser.parse(line, line.length, true)).toBeNull();
  return parser.failure();
}

describe('Apache directives', () => {
  it('reads every mod_log_config directive people use', () => {
    const format =
      '%h %a %{c}a %A %l %u %t "%r" %m %U%q %H %s %>s %b %B %D %T %{ms}T "%{Referer}i" "%{User-Agent}i" ' +
      '"%{X-Forwarded-For}i" "%{Content-Type}o" %{UNIQUE_ID}e %{ratio}n %v %V %p %{remote}p %k %X %I %O %L %P %{tid}P ' +
      '%f %R %S %{sid}C %%';
    const line =
      '10.0.0.1 10.0.0.2 10.0.0.3 10.0.0.9 - alice [10/Oct/2000:13:55:36 +0200] "GET /a?b=1 HTTP/1.1" GET /a?b=1 HTTP/1.1 ' +
      '302 200 1234 0 1500 1 1 "http://ref/" "Agent/1.0" "203.0.113.1, 10.0.0.1" "text/html" XYZ123 42 ' +
      'www.example.com example.com 443 51234 3 + 456 789 LOGID1 4242 140 /var/www/a /handler 1245 s3cr3t %';
    expect(parse({ apache: format }, line)).toEqual({
      client_ip: '10.0.0.2',
      ident: null,
      user: 'alice',
      timestamp: '2000-10-10T11:55:36.000Z',
      timestamp_offset_minutes: 120,
      request: 'GET /a?b=1 HTTP/1.1',
      method: 'GET',
      path: '/a',
      query: 'b=1',
      protocol: 'HTTP/1.1',
      status: 200,
      bytes: 0,
      bytes_sent: 789,
      bytes_received: 456,
      referrer: 'http://ref/',
      user_agent: 'Agent/1.0',
      request_time_ms: 1,
      upstream_addr: null,
      upstream_status: null,
      upstream_response_time: null,
      upstream_response_time_ms: null,
      vhost: 'example.com',
      port: 443,
      forwarded_for: null,
      extra: {
        realip_remote_addr: '10.0.0.3',
        server_addr: '10.0.0.9',
        http_x_forwarded_for: '203.0.113.1, 10.0.0.1',
        sent_http_content_type: 'text/html',
        env_UNIQUE_ID: 'XYZ123',
        note_ratio: '42',
        remote_port: 51234,
        keepalive_requests: 3,
        connection_status: '+',
        log_id: 'LOGID1',
        pid: 4242,
        tid: 140,
        request_filename: '/var/www/a',
        handler: '/handler',
        bytes_transferred: 1245,
        cookie_sid: 's3cr3t',
      },
      raw_base64: null,
    });
  });

  it('converts %D (µs), %T (s) and %{UNIT}T to milliseconds', () => {
    expect(parse({ apache: '%D' }, '1500').request_time_ms).toBe(1.5);
    expect(parse({ apache: '%T' }, '2').request_time_ms).toBe(2000);
    expect(parse({ apache: '%{ms}T' }, '17').request_time_ms).toBe(17);
    expect(parse({ apache: '%{us}T' }, '17').request_time_ms).toBe(0.017);
    expect(parse({ apache: '%{s}T' }, '-').request_time_ms).toBeNull();
  });

  it('treats %b `-` as null and keeps %q as the query without `?`', () => {
    expect(parse('common', '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 304 -').bytes).toBeNull();
    expect(parse({ apache: '%U%q' }, '/a').query).toBeNull();
    expect(parse({ apache: '%U%q' }, '/a?').query).toBe('');
    expect(parse({ apache: '%U%q %s' }, '/a?x=1&y 200')).toMatchObject({ path: '/a', query: 'x=1&y', status: 200 });
  });

  it('reads the %{format}t forms of the documentation', () => {
    const ts = (format: string, text: string) => {
      const r = parse({ apache: format }, text);
      return [r.timestamp, r.timestamp_offset_minutes];
    };
    expect(ts('%{%d/%b/%Y %T}t.%{msec_frac}t %{%z}t', '10/Oct/2000 13:55:36.347 -0700')).toEqual([
      '2000-10-10T20:55:36.347Z',
      -420,
    ]);
    expect(ts('[%{%d/%b/%Y:%H:%M:%S}t.%{usec_frac}t %{%z}t]', '[10/Oct/2000:13:55:36.347123 +0000]')).toEqual([
      '2000-10-10T13:55:36.347Z',
      0,
    ]);
    expect(ts('%{begin:%Y-%m-%dT%H:%M:%S%z}t', '2000-10-10T13:55:36+0530')).toEqual(['2000-10-10T08:25:36.000Z', 330]);
    expect(ts('%{end:%FT%T}t', '2000-10-10T13:55:36')).toEqual(['2000-10-10T13:55:36.000Z', null]);
    expect(ts('%{sec}t', '971186136')).toEqual(['2000-10-10T13:55:36.000Z', null]);
    expect(ts('%{msec}t', '971186136347')).toEqual(['2000-10-10T13:55:36.347Z', null]);
    expect(ts('%{usec}t', '971186136347999')).toEqual(['2000-10-10T13:55:36.347Z', null]);
    expect(ts('%{%a %b %e %H:%M:%S %Y}t', 'Tue Oct  3 13:55:36 2000')).toEqual(['2000-10-03T13:55:36.000Z', null]);
    expect(ts('%{%A, %d %B %y %R:%S %Z}t', 'Tuesday, 10 October 00 13:55:36 GMT')).toEqual([
      '2000-10-10T13:55:36.000Z',
      0,
    ]);
    expect(ts('%t', '[29/Feb/2024:23:59:59 -1200]')).toEqual(['2024-03-01T11:59:59.000Z', -720]);
  });

  it('reads times without an offset in the configured zone', () => {
    const parser = compileAccess(
      { apache: '%{%Y-%m-%d %H:%M:%S}t %s' },
      { timezone: 'Europe/Paris', customVariables: [] },
    );
    const summer = parser.parse('2024-07-01 12:00:00 200', 23, false);
    const winter = parser.parse('2024-01-01 12:00:00 200', 23, false);
    expect([summer?.timestamp, summer?.timestamp_offset_minutes]).toEqual(['2024-07-01T10:00:00.000Z', 120]);
    expect([winter?.timestamp, winter?.timestamp_offset_minutes]).toEqual(['2024-01-01T11:00:00.000Z', 60]);
  });

  it('ignores status conditions and accepts a LogFormat line pasted from httpd.conf', () => {
    expect(parse({ apache: '%400,501{User-agent}i %!200,304,302{Referer}i' }, 'curl -')).toMatchObject({
      user_agent: 'curl',
      referrer: null,
    });
    const pasted = 'LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{Referer}i\\"" combined_ref';
    expect(
      parse({ apache: pasted }, '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 5 "http://x/"'),
    ).toMatchObject({ referrer: 'http://x/', status: 200 });
  });

  it('undoes ap_escape_logitem: \\" \\\\ \\xhh and C escapes', () => {
    const line =
      '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /x\\"y HTTP/1.0" 200 5 "-" "A \\"q\\" \\\\ \\x1b[31m \\t\\n caf\\xc3\\xa9"';
    expect(parse('combined', line)).toMatchObject({
      request: 'GET /x"y HTTP/1.0',
      path: '/x"y',
      user_agent: 'A "q" \\ \u001b[31m \t\n café',
    });
  });

  it('refuses bad format strings with the position', () => {
    const error = (format: string) => {
      try {
        compileAccess({ apache: format }, ctx);
      } catch (e) {
        return (e as Error).message;
      }
      return 'compiled';
    };
    expect(error('%h %Z')).toBe('unknown directive %Z at column 4 of the apache format');
    expect(error('%h %i')).toBe('%i at column 4 of the apache format needs a name in braces: %{Name}i');
    expect(error('%h %{Referer')).toBe('unclosed `{` at column 5 of the apache format');
    expect(error('%h %')).toBe('the apache format ends inside the directive at column 4');
    expect(error('%h %{bogus}p')).toBe('unknown parameter {bogus} of %{bogus}p at column 4 of the apache format');
    expect(error('%h%u')).toMatch(/^%h at column 1 and %u at column 3 have no text between them/);
    expect(error('%{%H:%M}t')).toBe(
      'the time at column 1 of the apache format lacks %Y, %m, %d, %S: it does not name an instant',
    );
    expect(error('%{%j}t')).toBe('unsupported strftime conversion %j in %{%j}t at column 1 of the apache format');
    expect(error('literal only')).toBe('the apache format has no directive');
  });
});

describe('nginx variables', () => {
  it('reads the documented variables', () => {
    const format =
      '$remote_addr - $remote_user [$time_local] $time_iso8601 $msec "$request" $request_method $request_uri ' +
      '$uri $args $server_protocol $status $body_bytes_sent $bytes_sent $request_length $request_time ' +
      '$upstream_addr $upstream_status $upstream_response_time $upstream_cache_status "$http_referer" ' +
      '"$http_user_agent" "$http_x_forwarded_for" "$sent_http_content_type" $host $server_name $server_port ' +
      // biome-ignore lint/suspicious/noTemplateCurlyInString: nginx's ${name} variable syntax
      '$scheme $connection $connection_requests $pipe $request_id ${geoip2_country}';
    const line =
      '2001:db8::1 - bob [12/Mar/2024:08:15:02 +0100] 2024-03-12T08:15:02+01:00 1710227702.123 ' +
      '"GET /p?q=1 HTTP/2.0" GET /p?q=1 /p q=1 HTTP/2.0 200 512 700 320 0.125 10.0.0.5:8080, 10.0.0.6:8080 502, 200 ' +
      '0.050, 0.070 MISS "-" "curl/8" "-" "application/json" example.com _ 443 https 12345 7 . ' +
      '9f8e7d6c5b4a DE';
    expect(parse({ nginx: format }, line)).toEqual({
      client_ip: '2001:db8::1',
      ident: null,
      user: 'bob',
      // $msec comes last and adds the milliseconds $time_local lacks.
      timestamp: '2024-03-12T07:15:02.123Z',
      timestamp_offset_minutes: 60,
      request: 'GET /p?q=1 HTTP/2.0',
      method: 'GET',
      path: '/p',
      query: 'q=1',
      protocol: 'HTTP/2.0',
      status: 200,
      bytes: 512,
      bytes_sent: 700,
      bytes_received: 320,
      referrer: null,
      user_agent: 'curl/8',
      request_time_ms: 125,
      upstream_addr: '10.0.0.5:8080, 10.0.0.6:8080',
      upstream_status: '502, 200',
      upstream_response_time: '0.050, 0.070',
      upstream_response_time_ms: 120,
      vhost: '_',
      port: 443,
      forwarded_for: null,
      extra: {
        upstream_cache_status: 'MISS',
        http_x_forwarded_for: null,
        sent_http_content_type: 'application/json',
        scheme: 'https',
        connection: 12345,
        connection_requests: 7,
        pipe: '.',
        request_id: '9f8e7d6c5b4a',
        geoip2_country: 'DE',
      },
      raw_base64: null,
    });
  });

  it('keeps $msec milliseconds and $request_time exactly', () => {
    expect(parse({ nginx: '$msec $request_time' }, '1710227702.007 0.001')).toMatchObject({
      timestamp: '2024-03-12T07:15:02.007Z',
      timestamp_offset_minutes: null,
      request_time_ms: 1,
    });
    expect(parse({ nginx: '$request_time' }, '12.345').request_time_ms).toBe(12345);
  });

  it('reads upstream lists with retries and groups, in any position', () => {
    const r = parse(
      'nginx_timed_combined',
      '1.2.3.4 - - [12/Mar/2024:08:15:02 +0000] "GET / HTTP/1.1" 502 0 "-" "-" 3.004 1.001, 2.002 : 0.001, - p',
    );
    expect(r).toMatchObject({
      upstream_response_time: '1.001, 2.002 : 0.001, -',
      upstream_response_time_ms: 3004,
      extra: { pipe: 'p' },
    });
    const quoted = parse(
      'nginx_upstream_time',
      '1.2.3.4 - - [12/Mar/2024:08:15:02 +0000] "GET / HTTP/1.1" 200 1 "-" "-" rt=0.010 uct="0.001" uht="0.002, 0.004" urt="0.003, 0.005"',
    );
    expect(quoted).toMatchObject({
      request_time_ms: 10,
      upstream_response_time_ms: 8,
      extra: { upstream_connect_time: '0.001', upstream_header_time: '0.002, 0.004' },
    });
    expect(parse({ nginx: '$upstream_response_time $status' }, '- 200')).toMatchObject({
      upstream_response_time: null,
      upstream_response_time_ms: null,
      status: 200,
    });
  });

  it('splits $uri$is_args$args, where a request without arguments logs `-` for $args', () => {
    const f = { nginx: '"$request_method $uri$is_args$args $server_protocol" $status' };
    expect(parse(f, '"GET /a/b- HTTP/1.1" 200')).toMatchObject({ path: '/a/b', query: null });
    expect(parse(f, '"GET /a/b-- HTTP/1.1" 200')).toMatchObject({ path: '/a/b-', query: null });
    expect(parse(f, '"GET /a?x=1 HTTP/1.1" 200')).toMatchObject({ path: '/a', query: 'x=1' });
    expect(parse(f, '"GET /a? HTTP/1.1" 200')).toMatchObject({ path: '/a', query: '' });
  });

  it('undoes the default escaping (\\xHH for ", \\ and bytes outside 0x20-0x7E)', () => {
    const line =
      '1.2.3.4 - - [12/Mar/2024:08:15:02 +0000] "GET /caf\\xC3\\xA9?q=\\x22\\x5C HTTP/1.1" 200 1 "-" "Mozilla \\x22x\\x22 \\x09"';
    expect(parse('nginx_combined', line)).toMatchObject({
      path: '/café',
      query: 'q="\\',
      user_agent: 'Mozilla "x" \t',
    });
  });

  it('reads escape=json templates and a log_format directive pasted from nginx.conf', () => {
    const pasted = `log_format json_access escape=json '{"time":"$time_iso8601","ip":"$remote_addr",'
        '"request":"$request","status":$status,"ua":"$http_user_agent","user":"$remote_user"}';`;
    const line =
      '{"time":"2024-03-12T08:15:02+00:00","ip":"203.0.113.9","request":"GET /a\\"b HTTP/1.1","status":200,' +
      '"ua":"caf\u00e9 \\u001b \\\\","user":""}';
    expect(parse({ nginx: pasted }, line)).toMatchObject({
      client_ip: '203.0.113.9',
      path: '/a"b',
      status: 200,
      user_agent: 'café \u001b \\',
      user: null,
    });
    const main = `log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" '
                      '"$http_user_agent" "$http_x_forwarded_for"';`;
    const line2 = '1.2.3.4 - - [12/Mar/2024:08:15:02 +0000] "GET / HTTP/1.1" 200 1 "-" "curl" "198.51.100.1"';
    expect(parse({ nginx: main }, line2).extra).toEqual({ http_x_forwarded_for: '198.51.100.1' });
  });

  it('refuses unknown variables with their position', () => {
    const error = (format: string) => {
      try {
        compileAccess({ nginx: format }, ctx);
      } catch (e) {
        return (e as Error).message;
      }
      return 'compiled';
    };
    expect(error('$remote_addr $statuz')).toMatch(
      /^unknown variable \$statuz at column 14 of the nginx format; list variables/,
    );
    expect(error('$binary_remote_addr')).toMatch(/^\$binary_remote_addr at column 1 writes raw bytes/);
    expect(error('$remote_addr ${status')).toBe('unclosed `${` at column 14 of the nginx format');
    expect(error('$ x')).toBe('invalid variable name at column 1 of the nginx format');
    expect(error("log_format x '$status")).toBe('unterminated quoted string in the log_format directive');
  });
});

describe('real-world oddities', () => {
  const lines = fixture('oddities.log').trimEnd().split('\n');
  const rec = (i: number) => parse('combined', lines[i] as string);

  it('keeps non-HTTP request lines raw with method null, as the servers log them', () => {
    expect(rec(0)).toMatchObject({
      request: '\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\ufffd\u0003\u0003',
      method: null,
      path: null,
      protocol: null,
      status: 400,
      bytes: 157,
    });
    expect(rec(1)).toMatchObject({ request: null, method: null, status: 400 });
    expect(rec(11)).toMatchObject({ request: 'get /lower HTTP/1.1', method: 'get', path: '/lower' });
  });

  it('splits unusual but valid request lines', () => {
    expect(rec(2)).toMatchObject({ method: 'GET', path: '/', protocol: null });
    expect(rec(3)).toMatchObject({ method: 'PRI', path: '*', protocol: 'HTTP/2.0' });
    expect(rec(4)).toMatchObject({ method: 'GET', path: '/a b/c', protocol: 'HTTP/1.1' });
    expect(rec(5)).toMatchObject({ method: 'GET', path: 'http://example.com/proxy', query: 'x=1' });
    expect(rec(6)).toMatchObject({ method: 'CONNECT', path: 'example.com:443', query: null });
    expect(rec(12)).toMatchObject({ path: '/€', query: 'q=\ufffd' });
  });

  it('handles escapes, unescaped quotes, trailing blanks and bracketed IPv6', () => {
    expect(rec(7)).toMatchObject({ query: 's="x"', user_agent: 'Mozilla/5.0 "quoted" \\ back\tslash' });
    expect(rec(8)).toMatchObject({ user_agent: 'Bad "unescaped" agent', status: 200 });
    expect(rec(9)).toMatchObject({ user_agent: 'trailing blank' });
    expect(rec(10)).toMatchObject({ client_ip: '2001:db8::9' });
    expect(parse({ nginx: '$remote_addr $status' }, '[2001:db8::9]:443 200')).toMatchObject({
      client_ip: '2001:db8::9',
      extra: { remote_port: 443 },
    });
  });

  it('rejects what is not a log line, and a strict parse rejects what only the lenient one accepts', () => {
    expect(reject('combined', lines[13] as string)).toMatch(/^combined: expected/);
    const parser = compileAccess('combined', ctx);
    const line = lines[8] as string;
    expect(parser.parse(line, line.length, false)).toBeNull();
    expect(parser.failure()).toBe('combined: unexpected text at column 77 after the last field: `unescaped" agent"`');
  });
});
