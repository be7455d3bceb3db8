/**
 * Lines that real servers write and `format: auto` used to get wrong (issue 7): the virtual host taken
 * for the client, X-Forwarded-For lists in the client position, fields appended after the agent, bare
 * `-` for referrer and agent, and error logs sent to dead letters.
 */
import { describe, expect, it } from 'vitest';
import { createAjv } from '../../../engine/schema/ajv.ts';
import type { DeadLetter, EtlRecord } from '../../../engine/record.ts';
import { accessRecordSchema, errorLogRecordSchema } from '../../shared/log-records.ts';
import type { ParseOptions } from './schema.ts';
import { createParse, rawRecords, testContext } from './test-support.ts';

function run(lines: readonly string[], overrides: Partial<ParseOptions> = {}, file = 'access.log') {
  const ctx = testContext();
  const ports = createParse(overrides, ctx).process(rawRecords(`${lines.join('\n')}\n`, file));
  return {
    ctx,
    out: (ports.default ?? []) as EtlRecord[],
    errors: (ports.error_log ?? []) as EtlRecord[],
    dead: (ports.dead_letter ?? []) as DeadLetter[],
    detected: ctx.logs.filter((l) => l.message.startsWith('parse: detected format')).map((l) => l.fields?.format),
  };
}

const validAccess = createAjv().compile(accessRecordSchema);
const validErrorLog = createAjv().compile(errorLogRecordSchema);

const UA = 'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0';

describe('a virtual host before the client address', () => {
  // Debian and Ubuntu's other_vhosts_access.log.
  const vhostCombined = [
    `www.example.com:80 203.0.113.7 - - [10/Oct/2023:13:55:36 +0200] "GET / HTTP/1.1" 200 3477 "-" "${UA}"`,
    `shop.example.com:443 2001:db8::1 - alice [10/Oct/2023:13:55:37 +0200] "POST /cart HTTP/2.0" 302 512 "https://shop.example.com/" "${UA}"`,
  ];

  it('is detected as vhost_combined, not combined with the host for the client', () => {
    const { out, detected, dead } = run(vhostCombined);
    expect(dead).toEqual([]);
    expect(detected).toEqual(['vhost_combined']);
    expect(out[0]).toMatchObject({
      vhost: 'www.example.com',
      port: 80,
      client_ip: '203.0.113.7',
      user: null,
      bytes_sent: 3477,
      bytes: null,
    });
    expect(out[1]).toMatchObject({ vhost: 'shop.example.com', port: 443, client_ip: '2001:db8::1', user: 'alice' });
  });

  it('is detected as vhost_common for %v followed by common', () => {
    const { out, detected } = run([
      'www.example.com 192.0.2.1 - - [10/Oct/2023:13:55:36 +0200] "GET /a HTTP/1.1" 200 10',
      'blog.example.com 192.0.2.2 - - [10/Oct/2023:13:55:36 +0200] "GET /b HTTP/1.1" 404 20',
    ]);
    expect(detected).toEqual(['vhost_common']);
    expect(out[0]).toMatchObject({ vhost: 'www.example.com', client_ip: '192.0.2.1', user: null, bytes: 10 });
  });

  it('is read as the virtual host by combined itself (nginx `$host $remote_addr - …`)', () => {
    const { out } = run(
      [`example.com 198.51.100.9 - - [10/Oct/2023:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "${UA}"`],
      { format: 'combined' },
    );
    expect(out[0]).toMatchObject({ vhost: 'example.com', port: null, client_ip: '198.51.100.9', user: null });
  });
});

describe('an X-Forwarded-For list in the client position', () => {
  const tail = `- - [07/Dec/2016:11:05:07 +0100] "GET /ocelot HTTP/1.1" 200 571 "-" "${UA}"`;

  it('gives the rightmost address as client and keeps the chain', () => {
    const { out, dead } = run([`203.0.113.7, 198.51.100.2, 192.0.2.10 ${tail}`]);
    expect(dead).toEqual([]);
    expect(out[0]).toMatchObject({
      client_ip: '192.0.2.10',
      forwarded_for: ['203.0.113.7', '198.51.100.2', '192.0.2.10'],
      ident: null,
      user: null,
      status: 200,
      user_agent: UA,
    });
  });

  it('skips trusted proxies (IPv4 and IPv6 CIDRs), and takes the leftmost when all are trusted', () => {
    const trusted_proxies = ['192.0.2.0/24', '198.51.100.2', '2001:db8::/32'];
    const { out } = run(
      [
        `203.0.113.7, 198.51.100.2, 192.0.2.10 ${tail}`,
        `2a03:10ff::8000, 2001:db8::7 ${tail}`,
        `192.0.2.1, 192.0.2.2 ${tail}`,
      ],
      { trusted_proxies },
    );
    expect(out.map((r) => r.client_ip)).toEqual(['203.0.113.7', '2a03:10ff::8000', '192.0.2.1']);
  });

  it('reads quoted lists, a list before the connecting address, and a host before either', () => {
    const { out, dead } = run([
      `"10.5.102.222, 199.96.1.1, 204.246.1.1" 10.2.1.185 ${tail}`,
      `2a03:0000:10ff:f00f:0000:0000:0:8000, 10.225.192.17 10.2.2.121 ${tail}`,
      `example.com 10.0.0.2, 10.0.0.1, 81.2.69.143 ${tail}`,
      `example.com:80 "10.5.102.222, 175.16.199.1" 10.2.1.185 ${tail}`,
      `- 10.2.1.185 ${tail}`,
    ]);
    expect(dead).toEqual([]);
    expect(out.map((r) => [r.vhost, r.port, r.client_ip, r.forwarded_for])).toEqual([
      [null, null, '10.2.1.185', ['10.5.102.222', '199.96.1.1', '204.246.1.1', '10.2.1.185']],
      [null, null, '10.2.2.121', ['2a03:0000:10ff:f00f:0000:0000:0:8000', '10.225.192.17', '10.2.2.121']],
      ['example.com', null, '81.2.69.143', ['10.0.0.2', '10.0.0.1', '81.2.69.143']],
      ['example.com', 80, '10.2.1.185', ['10.5.102.222', '175.16.199.1', '10.2.1.185']],
      [null, null, '10.2.1.185', null],
    ]);
    for (const rec of out) expect(validAccess(rec), JSON.stringify(validAccess.errors)).toBe(true);
  });

  it('is read by the nginx formats too, and leaves single addresses alone', () => {
    const { out } = run([`203.0.113.7, 10.0.0.1 ${tail}`, `203.0.113.8 ${tail}`], {
      format: 'nginx_combined',
      trusted_proxies: ['10.0.0.0/8'],
    });
    expect(out.map((r) => [r.client_ip, r.forwarded_for])).toEqual([
      ['203.0.113.7', ['203.0.113.7', '10.0.0.1']],
      ['203.0.113.8', null],
    ]);
  });

  it('resolves a logged X-Forwarded-For field once trusted_proxies names the load balancer', () => {
    const line = `10.0.0.5 - - [07/Dec/2016:11:05:07 +0100] "GET / HTTP/1.1" 200 5 "-" "${UA}" "203.0.113.9, 10.0.0.4"`;
    const plain = run([line], { format: 'nginx_main' }).out[0];
    expect(plain).toMatchObject({ client_ip: '10.0.0.5', forwarded_for: null });
    const behind = run([line], { format: 'nginx_main', trusted_proxies: ['10.0.0.0/8'] }).out[0];
    expect(behind).toMatchObject({
      client_ip: '203.0.113.9',
      forwarded_for: ['203.0.113.9', '10.0.0.4', '10.0.0.5'],
      extra: { http_x_forwarded_for: '203.0.113.9, 10.0.0.4' },
    });
  });
});

describe('fields appended after the agent', () => {
  const head = '192.0.2.1 - - [07/Feb/2020:11:48:51 +0000] "POST /products HTTP/1.1" 200 59 "-" "curl/7.54.0"';

  it('end the agent at its closing quote and are kept, named when recognisable', () => {
    const { out, dead, detected } = run([
      `${head} "203.0.113.7, 10.0.0.1" 0.123 0.120`,
      `${head} "-" 0.005 -`,
      `${head} "-" 0.010 0.002, 0.004 : 0.001`,
    ]);
    expect(dead).toEqual([]);
    expect(detected).toEqual(['combined+tolerant']);
    expect(out[0]).toMatchObject({
      user_agent: 'curl/7.54.0',
      request_time_ms: 123,
      upstream_response_time: '0.120',
      upstream_response_time_ms: 120,
      client_ip: '192.0.2.1',
      extra: { http_x_forwarded_for: '203.0.113.7, 10.0.0.1' },
    });
    expect(out[1]).toMatchObject({
      request_time_ms: 5,
      upstream_response_time: null,
      extra: { http_x_forwarded_for: null },
    });
    expect(out[2]).toMatchObject({ upstream_response_time: '0.002, 0.004 : 0.001', upstream_response_time_ms: 7 });
    for (const rec of out) expect(validAccess(rec), JSON.stringify(validAccess.errors)).toBe(true);
  });

  it('keep what they cannot name as trailing_<n>, as the nginx ingress controller writes them', () => {
    // $request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name] $upstream_addr
    // $upstream_response_length $upstream_response_time $upstream_status $req_id
    const { out } = run([
      `${head} 89 0.001 [default-web-8080] [] 172.17.0.5:8080, 172.17.0.7:8080 59, 100 0.100, 0.004 200, 203 529a0079`,
    ]);
    expect(out[0]).toMatchObject({
      user_agent: 'curl/7.54.0',
      request_time_ms: 1,
      upstream_addr: '172.17.0.5:8080, 172.17.0.7:8080',
      upstream_response_time: '0.100, 0.004',
      upstream_response_time_ms: 104,
      upstream_status: '200, 203',
      extra: {
        trailing_1: 89,
        trailing_3: '[default-web-8080]',
        trailing_4: '[]',
        trailing_6: '59, 100',
        trailing_9: '529a0079',
      },
    });
  });

  it('read key=value pairs by their key', () => {
    const { out } = run([`${head} rt=0.250 uct="0.001" urt="0.200" cs=HIT`]);
    expect(out[0]).toMatchObject({
      request_time_ms: 250,
      upstream_response_time_ms: 200,
      extra: { uct: '0.001', cs: 'HIT' },
    });
  });

  it('lose to a built-in format that names them exactly', () => {
    const { detected, out } = run([`${head} "-" 0.005`]);
    expect(detected).toEqual(['nginx_main_request_time']);
    expect(out[0]).toMatchObject({ request_time_ms: 5, extra: { http_x_forwarded_for: null } });
  });

  it('are kept with an explicit combined format instead of being folded into the agent', () => {
    const { out } = run([`${head} "-" 0.005 0.004`], { format: 'combined' });
    expect(out[0]).toMatchObject({ user_agent: 'curl/7.54.0', request_time_ms: 5, upstream_response_time_ms: 4 });
  });
});

describe('a bare - for referrer and agent', () => {
  const lines = [
    'localhost - - [18/Nov/2007:19:11:46 +0000] "GET /printers/ HTTP/1.1" 200 0 - -',
    '192.0.2.3 - - [18/Nov/2007:19:11:47 +0000] "GET /admin/ HTTP/1.1" 200 8882 "http://localhost:631/" -',
  ];

  it('is a null referrer and agent, detected and explicit', () => {
    for (const overrides of [{}, { format: 'combined' }] as const) {
      const { out, dead } = run(lines, overrides);
      expect(dead).toEqual([]);
      expect(out.map((r) => [r.client_ip, r.bytes, r.referrer, r.user_agent])).toEqual([
        ['localhost', 0, null, null],
        ['192.0.2.3', 8882, 'http://localhost:631/', null],
      ]);
    }
  });
});

describe('error logs under format auto', () => {
  const apache24 =
    '[Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187] File does not exist: /usr/local/apache2/htdocs/favicon.ico';
  const apache22 = '[Mon Dec 26 16:22:08 2016] [error] [client 192.168.33.1] File does not exist: /var/www/favicon.ico';
  const nginx =
    '2016/10/25 14:49:34 [error] 54053#0: *1 open() "/usr/share/nginx/html/favicon.ico" failed (2: No such file or directory), client: 127.0.0.1, server: localhost, request: "GET /favicon.ico HTTP/1.1", host: "localhost:8080"';

  it('are detected per file and leave on the error_log port with their own schema', () => {
    const a = run([apache24, apache22], {}, '/var/log/apache2/error.log');
    expect(a.dead).toEqual([]);
    expect(a.out).toEqual([]);
    expect(a.detected).toEqual(['apache_error']);
    expect(a.ctx.logs.find((l) => l.message === 'parse: detected format')?.fields).toMatchObject({
      format: 'apache_error',
      output: 'parsed.error_log',
    });
    expect(a.errors.map((r) => [r.server, r.module, r.level, r.client_ip])).toEqual([
      ['apache', 'core', 'error', '72.15.99.187'],
      ['apache', null, 'error', '192.168.33.1'],
    ]);
    const n = run([nginx], {}, '/var/log/nginx/error.log');
    expect(n.detected).toEqual(['nginx_error']);
    expect(n.errors[0]).toMatchObject({
      server: 'nginx',
      level: 'error',
      client_ip: '127.0.0.1',
      host: 'localhost:8080',
    });
    for (const rec of [...a.errors, ...n.errors])
      expect(validErrorLog(rec), JSON.stringify(validErrorLog.errors)).toBe(true);
  });

  it('are told from access logs file by file in one batch', () => {
    const ctx = testContext();
    const parse = createParse({}, ctx);
    const records = [
      ...rawRecords(`${apache24}\n`, 'error.log'),
      ...rawRecords(`192.0.2.1 - - [10/Oct/2023:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "${UA}"\n`, 'access.log'),
    ];
    const ports = parse.process(records);
    expect(ports.default).toHaveLength(1);
    expect(ports.error_log).toHaveLength(1);
  });
});
