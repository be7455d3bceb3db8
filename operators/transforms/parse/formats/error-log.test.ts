import { describe, expect, it } from 'vitest';
import { fixture } from '../test-support.ts';
import { ErrorLogFormat } from './error-log.ts';

function parseAll(name: 'apache_error' | 'nginx_error' | 'error_log', text: string, timezone = 'UTC') {
  const format = new ErrorLogFormat(name, timezone);
  return text
    .trimEnd()
    .split('\n')
    .map((line) => format.parse(line, line.length) ?? format.failure());
}

describe('error logs', () => {
  it('parses Apache 2.2 and 2.4 entries', () => {
    const [a, b, c, d] = parseAll('apache_error', fixture('apache-error.log'));
    expect(a).toEqual({
      server: 'apache',
      timestamp: '2011-09-09T10:42:29.902Z',
      timestamp_offset_minutes: null,
      level: 'error',
      module: 'core',
      pid: 35708,
      tid: 4328636416,
      connection_id: null,
      client_ip: '72.15.99.187',
      client_port: 5412,
      code: 'AH00128',
      message: 'File does not exist: /usr/local/apache2/htdocs/favicon.ico',
      request: null,
      upstream: null,
      host: null,
      referrer: 'http://example.com/',
      raw_base64: null,
    });
    expect(b).toMatchObject({
      level: 'error',
      module: null,
      pid: null,
      client_ip: '127.0.0.1',
      client_port: null,
      code: null,
    });
    expect(c).toMatchObject({
      module: 'mpm_event',
      level: 'notice',
      pid: 1,
      tid: 140,
      code: 'AH00489',
      client_ip: null,
    });
    expect(d).toMatchObject({
      client_ip: '::1',
      client_port: 58619,
      // mod_proxy's own status comes first; the AH code follows the client (as Logstash's HTTPD_ERRORLOG reads it).
      code: 'AH01102',
      message: '(70007)The timeout specified has expired: error reading status line from remote server 127.0.0.1:8080',
    });
  });

  it('parses nginx entries with their context fields', () => {
    const [a, b, c] = parseAll('nginx_error', fixture('nginx-error.log'), 'Europe/Paris');
    expect(a).toEqual({
      server: 'nginx',
      timestamp: '2011-09-09T08:42:29.000Z',
      timestamp_offset_minutes: 120,
      level: 'error',
      module: null,
      pid: 1234,
      tid: 0,
      connection_id: 99,
      client_ip: '192.0.2.1',
      client_port: null,
      code: null,
      message: 'open() "/usr/share/nginx/html/favicon.ico" failed (2: No such file or directory)',
      request: 'GET /favicon.ico HTTP/1.1',
      upstream: null,
      host: 'localhost',
      referrer: 'http://localhost/',
      raw_base64: null,
    });
    expect(b).toMatchObject({
      level: 'notice',
      connection_id: null,
      message: 'start worker processes',
      client_ip: null,
    });
    expect(c).toMatchObject({ client_ip: '2001:db8::1', upstream: 'http://10.0.0.5:8080/v1', host: 'api.example.com' });
  });

  it("rejects the other server's entries and non-entries with a reason", () => {
    expect(parseAll('apache_error', fixture('nginx-error.log'))[0]).toBe(
      'apache_error: expected `[` and the time at column 1',
    );
    expect(parseAll('nginx_error', fixture('apache-error.log'))[0]).toBe(
      'nginx_error: expected the time `yyyy/mm/dd HH:MM:SS` at column 1',
    );
    expect(parseAll('error_log', '[not a time] [error] x')[0]).toBe('error_log: invalid time `not a time` at column 2');
    expect(parseAll('error_log', '2024/13/01 00:00:00 [error] 1#1: x')[0]).toBe(
      'error_log: invalid time `2024/13/01 00:00:00` at column 1',
    );
  });
});
