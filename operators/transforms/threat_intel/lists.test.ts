/** List files in the formats people download, and lists following their files. */
import { once } from 'node:events';
import { mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { addressBytes, parseList, WatchedList } from './lists.ts';

const dir = mkdtempSync(join(tmpdir(), 'etl-threat-lists-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ip = (text: string) => addressBytes(text) as number[];

describe('list formats', () => {
  it('reads a FireHOL netset', () => {
    const { table, refused } = parseList(
      [
        '#',
        '# firehol_level1',
        '#',
        '# ipv4 hash:net ipset',
        '#',
        '# A firewall blacklist composed from IP lists',
        '# Source URL: https://iplists.firehol.org/?ipset=firehol_level1',
        '# This File Date         : Thu Dec  4 09:00:00 UTC 2026',
        '#',
        '0.0.0.0/8',
        '1.10.16.0/20',
        '5.134.128.0/19',
        '223.254.0.0/16',
        '',
      ].join('\n'),
    );
    expect(refused).toEqual([]);
    expect(table.size).toBe(4);
    expect(table.lookup(ip('1.10.20.3'))?.entry).toEqual({ range: '1.10.16.0/20', note: null });
    expect(table.lookup(ip('1.10.32.1'))).toBeUndefined();
  });

  it('reads Spamhaus DROP text, keeping the SBL id', () => {
    const { table, refused } = parseList(
      [
        '; Spamhaus DROP List 2026/12/04 - (c) 2026 The Spamhaus Project SLU',
        '; https://www.spamhaus.org/drop/drop.txt',
        '; Last-Modified: Thu, 04 Dec 2026 12:00:00 GMT',
        '; Expires: Thu, 04 Dec 2026 13:00:00 GMT',
        '1.10.16.0/20 ; SBL256894',
        '2.56.192.0/22 ; SBL459831',
        '2a06:e480::/29 ; SBL301771',
      ].join('\r\n'),
    );
    expect(refused).toEqual([]);
    expect(table.lookup(ip('2.56.193.200'))?.entry).toEqual({ range: '2.56.192.0/22', note: 'SBL459831' });
    expect(table.lookup(ip('2a06:e480:1::5'))).toEqual({
      entry: { range: '2a06:e480::/29', note: 'SBL301771' },
      length: 29,
    });
  });

  it('reads Spamhaus DROP JSON lines, skipping the metadata line', () => {
    const { table, refused } = parseList(
      [
        '{"cidr":"1.10.16.0/20","sblid":"SBL256894","rir":"apnic"}',
        '{"cidr":"2a06:e480::/29","sblid":"SBL301771","rir":"ripencc"}',
        '{"type":"metadata","timestamp":1764849600,"size":2,"records":2,"copyright":"(c) 2026 The Spamhaus Project SLU"}',
      ].join('\n'),
    );
    expect(refused).toEqual([]);
    expect(table.size).toBe(2);
    expect(table.lookup(ip('1.10.16.1'))?.entry.note).toBe('SBL256894');
  });

  it('reads plain lists with comments, single addresses and a byte-order mark; refuses the rest by line', () => {
    const { table, refused } = parseList(
      [
        '\ufeff# my own list',
        '198.51.100.7   # the scraper from last week',
        '2001:db8::1',
        '203.0.113.0/24',
        '203.0.113.128/25 # more specific',
        'not-an-address',
        '10.0.0.0/33',
        '{"cidr": 12}',
        '   ',
      ].join('\n'),
    );
    expect(refused).toEqual([
      { line: 6, text: 'not-an-address' },
      { line: 7, text: '10.0.0.0/33' },
      { line: 8, text: '{"cidr": 12}' },
    ]);
    expect(table.size).toBe(4);
    expect(table.lookup(ip('198.51.100.7'))?.entry).toEqual({ range: '198.51.100.7/32', note: null });
    expect(table.lookup(ip('198.51.100.8'))).toBeUndefined();
    expect(table.lookup(ip('2001:db8::1'))?.length).toBe(128);
    expect(table.lookup(ip('203.0.113.200'))?.entry.range).toBe('203.0.113.128/25');
    expect(table.lookup(ip('203.0.113.20'))?.entry.range).toBe('203.0.113.0/24');
    expect(table.lookup(ip('::ffff:203.0.113.20'))?.entry.range).toBe('203.0.113.0/24');
  });
});

describe('a list following its file', () => {
  const open: WatchedList[] = [];
  afterEach(() => {
    for (const list of open.splice(0)) list.close();
  });
  const watched = (path: string, watch = true, intervalSeconds = 0) => {
    const list = new WatchedList({ name: 'test', path }, { watch, intervalSeconds });
    open.push(list);
    return list;
  };

  it('fails to open on a missing file', async () => {
    await expect(watched(join(dir, 'missing.txt')).open()).rejects.toThrow(/ENOENT/);
  });

  it('reloads when the file is rewritten in place and when it is replaced by rename', async () => {
    const path = join(dir, 'watched.netset');
    writeFileSync(path, '192.0.2.0/24\n');
    const list = watched(path);
    expect((await list.open()).ranges).toBe(1);
    expect(list.lookup(ip('198.51.100.1'))).toBeUndefined();

    let loaded = once(list, 'loaded');
    writeFileSync(path, '192.0.2.0/24\n198.51.100.0/24\n');
    expect((await loaded)[0]).toMatchObject({ list: 'test', ranges: 2, reload: true });
    expect(list.lookup(ip('198.51.100.1'))?.entry.range).toBe('198.51.100.0/24');

    loaded = once(list, 'loaded');
    writeFileSync(`${path}.tmp`, '2001:db8::/32 # only this now\n');
    renameSync(`${path}.tmp`, path);
    expect((await loaded)[0]).toMatchObject({ ranges: 1, reload: true });
    expect(list.lookup(ip('198.51.100.1'))).toBeUndefined();
    expect(list.lookup(ip('2001:db8:1::1'))?.entry.range).toBe('2001:db8::/32');
  });

  it('keeps its table when the file goes away, and says so', async () => {
    const path = join(dir, 'vanishing.txt');
    writeFileSync(path, '192.0.2.0/24\n');
    const list = watched(path);
    await list.open();
    const failed = once(list, 'failed');
    unlinkSync(path);
    expect(String((await failed)[0].error)).toMatch(/ENOENT/);
    expect(list.lookup(ip('192.0.2.9'))?.entry.range).toBe('192.0.2.0/24');
  });

  it('refuses a file of which no line is an address, at start and at a reload (an error page saved as the list)', async () => {
    const path = join(dir, 'html.txt');
    writeFileSync(path, '<html>\n<body>502 Bad Gateway</body>\n</html>\n');
    await expect(watched(path).open()).rejects.toThrow(
      /no address or CIDR block in it: 3 lines refused, the first at line 1: <html>/,
    );
    writeFileSync(path, '192.0.2.0/24\n');
    const list = watched(path);
    await list.open();
    const failed = once(list, 'failed');
    writeFileSync(path, '<html>502</html>\n');
    expect(String((await failed)[0].error)).toMatch(/no address or CIDR block/);
    expect(list.lookup(ip('192.0.2.9'))?.entry.range).toBe('192.0.2.0/24');
    const loaded = once(list, 'loaded');
    writeFileSync(path, '');
    expect((await loaded)[0].ranges).toBe(0);
  });

  it('reloads on its schedule without file events', async () => {
    const path = join(dir, 'polled.txt');
    writeFileSync(path, '192.0.2.0/24\n');
    const list = watched(path, false, 1);
    await list.open();
    const loaded = once(list, 'loaded');
    writeFileSync(path, '192.0.2.0/24\n192.0.2.0/25\n');
    expect((await loaded)[0].ranges).toBe(2);
    expect(list.lookup(ip('192.0.2.1'))?.length).toBe(25);
  });
});
