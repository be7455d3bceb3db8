/** The transform through its contract: fields, the threats port, reloads between batches, start failures. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Transform } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import { createAjv } from '../../../engine/schema/ajv.ts';
import { recordingContext } from '../../../test/support/context.ts';
import definition from './index.ts';
import type { ThreatIntelOptions } from './schema.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-threat-intel-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function options(given: Record<string, unknown>): ThreatIntelOptions {
  const copy = structuredClone(given);
  const validate = createAjv().compile(definition.schema);
  if (!validate(copy)) throw new Error(JSON.stringify(validate.errors));
  return copy as unknown as ThreatIntelOptions;
}

const request = (client_ip: string | null, path = '/', extra: Partial<EtlRecord> = {}): EtlRecord => ({
  client_ip,
  path,
  query: null,
  user_agent: 'Mozilla/5.0',
  referrer: null,
  status: 200,
  ...extra,
});

async function started(given: Record<string, unknown>) {
  const ctx = recordingContext({ baseDir: dir });
  const transform: Transform = await definition.create(options(given), ctx);
  await transform.open?.();
  return { transform, ctx };
}

describe('threat_intel', () => {
  writeFileSync(join(dir, 'drop.txt'), '; Spamhaus DROP List\n192.0.2.0/24 ; SBL100\n2001:db8::/32 ; SBL200\n');
  writeFileSync(join(dir, 'level1.netset'), '# firehol\n192.0.0.0/16\n192.0.2.128/25\n');

  it('adds list and signature fields, and sends matched records on threats too', async () => {
    const { transform } = await started({
      lists: [
        { name: 'spamhaus_drop', path: 'drop.txt' },
        { name: 'firehol_level1', path: 'level1.netset' },
      ],
    });
    const records = [
      request('192.0.2.200'),
      request('192.0.9.1'),
      request('::ffff:192.0.2.1', '/.git/config', { user_agent: 'sqlmap/1.7' }),
      request('2001:db8::5'),
      request('203.0.113.5'),
      request('not-an-ip', '/item', { query: "id=1' or '1'='1" }),
      request(null),
    ];
    const out = await transform.process(records);
    expect(
      out.default?.map((r) => [
        r.threat_matched,
        r.threat_lists,
        r.threat_range,
        r.threat_range_note,
        r.threat_rules,
        r.threat_categories,
      ]),
    ).toEqual([
      [true, 'spamhaus_drop,firehol_level1', '192.0.2.128/25', null, null, null],
      [true, 'firehol_level1', '192.0.0.0/16', null, null, null],
      [true, 'spamhaus_drop,firehol_level1', '192.0.2.0/24', 'SBL100', 'probe-vcs,agent-sqlmap', 'scanner,bad_agent'],
      [true, 'spamhaus_drop', '2001:db8::/32', 'SBL200', null, null],
      [false, null, null, null, null, null],
      [true, null, null, null, 'sqli-tautology', 'sqli'],
      [false, null, null, null, null, null],
    ]);
    // The fields are added to the records themselves (changesRecords); a match is the same object on both ports.
    expect(out.default?.[0]).toMatchObject({ client_ip: '192.0.2.200', status: 200 });
    expect(out.default?.[0]).toBe(records[0]);
    expect(out.threats?.[0]).toBe(records[0]);
    expect(out.threats).toEqual(out.default?.filter((r) => r.threat_matched));
    // Again: addresses and request parts seen before are answered from what the stage kept, alike.
    expect((await transform.process(records.map((r) => ({ ...r })))).default).toEqual(out.default);
    await transform.close?.();
  });

  it('sends nothing on threats for a batch without matches, and only the fields its options call for', async () => {
    const { transform } = await started({ signatures: { builtin: true } });
    const out = await transform.process([request('192.0.2.1', '/index.html')]);
    expect(out.threats).toBeUndefined();
    expect(Object.keys(out.default?.[0] ?? {}).filter((k) => k.startsWith('threat_'))).toEqual([
      'threat_matched',
      'threat_rules',
      'threat_categories',
    ]);
    await transform.close?.();
  });

  it('reads the fields its options name, and leaves out parts set to null', async () => {
    const { transform } = await started({
      ip_field: 'remote',
      user_agent_field: 'agent',
      path_field: null,
      lists: [{ name: 'drop', path: 'drop.txt' }],
    });
    const [a, b] =
      (
        await transform.process([
          { remote: '192.0.2.1', agent: 'Nikto/2.1.6', path: '/.env' },
          { client_ip: '192.0.2.1', user_agent: 'Nikto', path: '/.env' },
        ])
      ).default ?? [];
    expect(a).toMatchObject({ threat_lists: 'drop', threat_rules: 'agent-nikto' });
    expect(b).toMatchObject({ threat_matched: false, threat_lists: null, threat_rules: null });
    await transform.close?.();
  });

  it('uses a reloaded list from the next batch on, and logs the reload with refused lines', async () => {
    const path = join(dir, 'changing.txt');
    writeFileSync(path, '198.51.100.0/24\n');
    const { transform, ctx } = await started({ lists: [{ name: 'mine', path }], signatures: { builtin: false } });
    expect((await transform.process([request('203.0.113.9')])).default?.[0]?.threat_matched).toBe(false);
    const reloaded = ctx.logged('list mine reloaded');
    writeFileSync(path, '198.51.100.0/24\n203.0.113.0/24\nbogus line\n');
    expect((await reloaded).message).toMatch(
      /2 blocks from .*changing\.txt; 1 lines refused, the first at line 3: bogus line/,
    );
    expect((await transform.process([request('203.0.113.9')])).default?.[0]).toMatchObject({
      threat_matched: true,
      threat_range: '203.0.113.0/24',
    });
    expect(ctx.values.get('threat_intel_list_loads_total{list=mine}')).toBe(2);
    expect(ctx.values.get('threat_intel_list_ranges{list=mine}')).toBe(2);
    expect(ctx.logs.some((l) => l.level === 'warn' && l.message.includes('changing.txt:3: bogus line'))).toBe(true);
    await transform.close?.();
  });

  it('fails to start on a missing list, and on a malformed rule file, saying which and where', async () => {
    await expect(started({ lists: [{ name: 'gone', path: 'nowhere.txt' }] })).rejects.toThrow(
      /^threat_intel stage: list gone: cannot read \/.*\/nowhere\.txt: no such file$/,
    );
    writeFileSync(
      join(dir, 'bad-rules.yaml'),
      'rules:\n  - id: x\n    category: y\n    in: [path]\n    pattern: "(?<"\n',
    );
    await expect(started({ signatures: { files: ['bad-rules.yaml'] } })).rejects.toThrow(
      /signatures: .*bad-rules\.yaml:2:5: rule 1: `pattern` is not a valid regular expression/,
    );
    await expect(started({ signatures: { disable: ['probe-nope'] } })).rejects.toThrow(
      /`probe-nope`, which no rule has/,
    );
  });
});

describe('threat_intel options', () => {
  it('refuses two lists of one name, and options that look for nothing', () => {
    const problems = definition.validate?.(
      options({
        lists: [
          { name: 'a', path: 'a.txt' },
          { name: 'a', path: 'b.txt' },
        ],
        signatures: { builtin: false },
      }),
      { inputSchema: undefined },
    );
    expect(problems?.map((p) => [p.path, p.message])).toEqual([
      [['lists', 1, 'name'], 'list name `a` is already the name of list 1'],
    ]);
    expect(
      definition
        .validate?.(options({ signatures: { builtin: false } }), { inputSchema: undefined })
        .map((p) => p.message),
    ).toEqual(['nothing to look for: no lists, signatures off, no abuseipdb']);
  });

  it('names the fields it reads, so misspellings are caught', () => {
    expect(definition.fields?.(options({ ip_field: 'clientip', referrer_field: null }))).toEqual([
      { path: ['path_field'], field: 'path' },
      { path: ['query_field'], field: 'query' },
      { path: ['user_agent_field'], field: 'user_agent' },
    ]);
    const lists = [{ name: 'a', path: 'a.txt' }];
    expect(definition.fields?.(options({ ip_field: 'clientip', referrer_field: null, lists }))).toEqual([
      { path: ['ip_field'], field: 'clientip' },
      { path: ['path_field'], field: 'path' },
      { path: ['query_field'], field: 'query' },
      { path: ['user_agent_field'], field: 'user_agent' },
    ]);
  });
});
