import fc from 'fast-check';
import { UAParser } from 'ua-parser-js';
import { Bots } from 'ua-parser-js/extensions';
import { describe, expect, it } from 'vitest';
import { loadPipelinesFromString } from '../../../engine/config/load.ts';
import { type EtlRecord, ORIGIN } from '../../../engine/record.ts';
import { createAjv } from '../../../engine/schema/ajv.ts';
import { recordingContext } from '../../../test/support/context.ts';
import { registry } from '../../all.ts';
import userAgent from './index.ts';
import type { UserAgentOptions } from './schema.ts';
import type { UserAgentTransform } from './user-agent.ts';

function options(patch: Partial<UserAgentOptions> = {}): UserAgentOptions {
  const o = structuredClone(patch) as Record<string, unknown>;
  const validate = createAjv().compile(userAgent.schema);
  if (!validate(o)) throw new Error(JSON.stringify(validate.errors));
  return o as UserAgentOptions;
}

async function transform(patch: Partial<UserAgentOptions> = {}) {
  const ctx = recordingContext();
  const t = (await userAgent.create(options(patch), ctx)) as UserAgentTransform;
  return { t, ctx };
}

const run = (t: UserAgentTransform, agents: unknown[], field = 'user_agent'): EtlRecord[] =>
  t.process(agents.map((ua) => ({ [field]: ua, status: 200 }))).default as EtlRecord[];

const CHROME =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
const IPHONE =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1';
const ANDROID =
  'Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36';
const IPAD =
  'Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1';
const FIREFOX_MAC = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0';

describe('user_agent', () => {
  it('tells browser, engine, OS and device of people’s agents', async () => {
    const { t } = await transform();
    const [chrome, iphone, android, ipad, firefox] = run(t, [CHROME, IPHONE, ANDROID, IPAD, FIREFOX_MAC]);
    expect(chrome).toEqual({
      user_agent: CHROME,
      status: 200,
      ua_browser: 'Chrome',
      ua_browser_version: '120.0.0.0',
      ua_engine: 'Blink',
      ua_os: 'Windows',
      ua_os_version: '10',
      ua_device_type: 'desktop',
      ua_device_vendor: null,
      ua_device_model: null,
      ua_is_bot: false,
      ua_bot_name: null,
      ua_bot_kind: null,
    });
    expect(iphone).toMatchObject({
      ua_browser: 'Mobile Safari',
      ua_browser_version: '17.1',
      ua_engine: 'WebKit',
      ua_os: 'iOS',
      ua_os_version: '17.1',
      ua_device_type: 'mobile',
      ua_device_vendor: 'Apple',
      ua_device_model: 'iPhone',
      ua_is_bot: false,
    });
    expect(android).toMatchObject({
      ua_browser: 'Mobile Chrome',
      ua_os: 'Android',
      ua_os_version: '14',
      ua_device_type: 'mobile',
      ua_device_vendor: 'Samsung',
      ua_device_model: 'SM-S918B',
    });
    expect(ipad).toMatchObject({ ua_device_type: 'tablet', ua_device_model: 'iPad' });
    expect(firefox).toMatchObject({
      ua_browser: 'Firefox',
      ua_engine: 'Gecko',
      ua_os: 'macOS',
      ua_device_type: 'desktop',
    });
  });

  it.each([
    ['Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)', 'Googlebot', 'crawler'],
    ['Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)', 'bingbot', 'crawler'],
    ['Mozilla/5.0 (compatible; GPTBot/1.0; +https://openai.com/gptbot)', 'GPTBot', 'crawler'],
    ['Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)', 'UptimeRobot', 'fetcher'],
    ['curl/8.5.0', 'curl', 'cli'],
    ['Wget/1.21.4', 'Wget', 'cli'],
    ['python-requests/2.31.0', 'python-requests', 'library'],
    ['Go-http-client/1.1', 'Go-http-client', 'library'],
    [
      'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36',
      'Chrome Headless',
      'headless',
    ],
    ['Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)', 'Pingdom.com_bot_version_1.4_', 'other'],
    ['kube-probe/1.28', 'kube-probe', 'other'],
    ['ELB-HealthChecker/2.0', 'ELB-HealthChecker', 'other'],
    ['Prometheus/2.45.0', 'Prometheus', 'other'],
  ])('flags %s as a bot named %s (%s)', async (agent, name, kind) => {
    const { t } = await transform();
    expect(run(t, [agent])[0]).toMatchObject({ ua_is_bot: true, ua_bot_name: name, ua_bot_kind: kind });
  });

  it('reads the parts ua-parser-js getResult() gives, asked one by one', () => {
    // parseAgent asks browser, engine, OS and device alone (getResult() also parses the CPU): the same answers.
    const parser = new UAParser(Bots);
    const agent = fc.oneof(
      fc.constantFrom(CHROME, IPHONE, 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)'),
      fc
        .tuple(fc.constantFrom('Mozilla/5.0 (', 'curl/', 'Chrome/', 'Android ', 'Windows NT '), fc.string())
        .map(([a, b]) => a + b),
      fc.string(),
    );
    fc.assert(
      fc.property(agent, (ua) => {
        const whole = new UAParser(Bots).setUA(ua).getResult();
        parser.setUA(ua);
        expect([parser.getBrowser(), parser.getEngine(), parser.getOS(), parser.getDevice()]).toEqual([
          whole.browser,
          whole.engine,
          whole.os,
          whole.device,
        ]);
      }),
      { numRuns: 300 },
    );
  });

  it('adds its fields to the records themselves (changesRecords), keeping where each came from', async () => {
    const { t } = await transform();
    const input: EtlRecord = { user_agent: 'curl/8.5.0', [ORIGIN]: { source: 'logs', line: 7 } };
    const [out] = t.process([input]).default as EtlRecord[];
    expect(out?.[ORIGIN]).toEqual({ source: 'logs', line: 7 });
    expect(out).toBe(input);
    expect(Object.keys(input)[0]).toBe('user_agent');
  });

  it('knows nothing of a missing agent, and nothing goes wrong on junk', async () => {
    const { t } = await transform();
    const [none, empty, dash, number] = run(t, [null, '', '-', 42]);
    for (const r of [none, empty, dash, number]) {
      expect(Object.entries(r as EtlRecord).filter(([k, v]) => k.startsWith('ua_') && v !== null)).toEqual([]);
    }
    const junk = run(t, ['\u0000\u00ff garbage ((( ;;;', 'x'.repeat(5000)]);
    expect(junk[0]).toMatchObject({ ua_browser: null, ua_is_bot: false });
    // isbot takes a one-word agent of no known browser for a script.
    expect(junk[1]).toMatchObject({ ua_browser: null, ua_is_bot: true, ua_bot_kind: 'other' });
  });

  it('answers repeated agents from its cache, and reports the hit ratio', async () => {
    const { t, ctx } = await transform();
    run(t, [CHROME, CHROME, IPHONE, CHROME, 'curl/8.5.0', IPHONE, CHROME, null]);
    expect(ctx.values.get('etl_user_agent_cache_hits_total')).toBe(4);
    expect(ctx.values.get('etl_user_agent_cache_misses_total')).toBe(3);
    expect(ctx.values.get('etl_user_agent_cache_hit_ratio')).toBeCloseTo(4 / 7);
    expect(t.hitRatio).toBeCloseTo(4 / 7);
    // Without a cache, the same answers.
    const { t: uncached } = await transform({ cache_size: 0 });
    expect(run(uncached, [CHROME, CHROME])).toEqual(run(t, [CHROME, CHROME]));
  });

  it('reads another field, writes another prefix, and emits records its declared schema accepts', async () => {
    const { t } = await transform({ source_field: 'agent', prefix: 'client_' });
    const records = run(t, [CHROME, 'curl/8.5.0', null, 'junk'], 'agent');
    expect(records[1]).toMatchObject({ client_browser: 'curl', client_is_bot: true });
    const declared = userAgent.outputSchemas?.(options({ prefix: 'client_' }), { type: 'object' })?.default;
    const validate = createAjv().compile({ ...declared });
    for (const r of records) expect(validate(r), JSON.stringify(validate.errors)).toBe(true);
  });

  it('refuses a misspelt source field at validate time, at its line and column', async () => {
    const yaml = `apiVersion: etl/v1
kind: Pipeline
metadata: { name: ua }
spec:
  sources:
    logs: { type: file, paths: [logs/*.log] }
  operators:
    parsed: { type: parse, inputs: [logs], format: combined }
    agents: { type: user_agent, inputs: [parsed], source_field: useragent }
  sinks:
    out: { type: file, inputs: [agents], path: out.csv, format: csv, fields: [ua_browser, ua_is_bot, status] }
`;
    const result = await loadPipelinesFromString(yaml, 'p.yaml', { registry, env: {} });
    const errors = result.diagnostics.filter((d) => d.severity === 'error');
    expect(errors.map((d) => [d.code, d.line, d.column, d.message])).toEqual([
      ['ETL_GRAPH_UNKNOWN_FIELD', 9, 65, 'unknown field `useragent` — did you mean `user_agent`?'],
    ]);
  });
});
