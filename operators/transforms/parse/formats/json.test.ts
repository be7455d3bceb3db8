import { describe, expect, it } from 'vitest';
import { JsonFormat } from './json.ts';

const parse = (line: string, fields = {}, timezone = 'UTC') => {
  const format = new JsonFormat('json', fields, timezone);
  return format.parse(line, line.length) ?? format.failure();
};

describe('JSON access logs', () => {
  it('maps nginx variable names by default and keeps the rest in extra', () => {
    const line =
      '{"msec":1710227702.123,"remote_addr":"203.0.113.9","request_method":"GET","request_uri":"/a?b=1",' +
      '"server_protocol":"HTTP/1.1","status":200,"body_bytes_sent":512,"request_time":0.004,"upstream_response_time":"0.001, 0.002",' +
      '"geo":{"country":"DE"},"upstream_cache_status":"-"}';
    expect(parse(line)).toMatchObject({
      timestamp: '2024-03-12T07:15:02.123Z',
      client_ip: '203.0.113.9',
      method: 'GET',
      path: '/a',
      query: 'b=1',
      protocol: 'HTTP/1.1',
      status: 200,
      bytes: 512,
      request_time_ms: 4,
      upstream_response_time_ms: 3,
      extra: { geo: { country: 'DE' }, upstream_cache_status: null },
    });
  });

  it('follows a field mapping with nested keys and units', () => {
    const line = '{"ts":"2024-03-12T08:15:02.5Z","http":{"status":"404","path":"/x"},"dur":1500,"client":"::1"}';
    const rec = parse(line, {
      timestamp: 'ts',
      status: 'http.status',
      path: 'http.path',
      request_time_us: 'dur',
      client_ip: 'client',
    });
    expect(rec).toMatchObject({
      timestamp: '2024-03-12T08:15:02.500Z',
      status: 404,
      path: '/x',
      request_time_ms: 1.5,
      client_ip: '::1',
      extra: {},
    });
  });

  it('reads the time forms logs use', () => {
    const ts = (v: unknown, zone = 'UTC') => {
      const r = parse(JSON.stringify({ status: 200, time: v }), {}, zone);
      return typeof r === 'string' ? r : [r.timestamp, r.timestamp_offset_minutes];
    };
    expect(ts('[10/Oct/2000:13:55:36 -0700]')).toEqual(['2000-10-10T20:55:36.000Z', -420]);
    expect(ts('2000-10-10T13:55:36-07:00')).toEqual(['2000-10-10T20:55:36.000Z', -420]);
    expect(ts('2000-10-10 13:55:36,25')).toEqual(['2000-10-10T13:55:36.250Z', null]);
    expect(ts('2000-10-10T13:55:36', 'America/New_York')).toEqual(['2000-10-10T17:55:36.000Z', -240]);
    expect(ts('971186136.5')).toEqual(['2000-10-10T13:55:36.500Z', null]);
    expect(ts(971186136)).toEqual(['2000-10-10T13:55:36.000Z', null]);
    expect(ts(971186136250)).toEqual(['2000-10-10T13:55:36.250Z', null]);
    expect(ts('yesterday')).toBe('json: key `time`: unrecognized time "yesterday"');
  });

  it('refuses lines that are not access-log JSON, saying why', () => {
    expect(parse('not json')).toBe('json: the line is not a JSON object');
    expect(parse('[1,2]')).toBe('json: the line is not a JSON object');
    expect(parse('{"a":1}')).toBe('json: the JSON object has none of the access-log keys (status, request, uri/path)');
    expect(parse('{"status":"ok"}')).toBe('json: key `status`: expected a non-negative integer, got "ok"');
    expect(parse('{"status":200,"request_time":-1}')).toBe('json: key `request_time`: expected a duration, got -1');
  });
});
