/** The reserved-range check with its first-octet/group prefilter agrees with BlockList alone on every address. */
import { BlockList, isIP } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isReserved, RESERVED_V4, RESERVED_V6 } from './geoip.ts';

const blockList = new BlockList();
for (const [net, bits] of RESERVED_V4) blockList.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of RESERVED_V6) blockList.addSubnet(net, bits, 'ipv6');

// Leads near the reserved blocks' edges, and any.
const v4Lead = fc.oneof(
  fc.constantFrom(0, 9, 10, 11, 100, 126, 127, 169, 172, 192, 198, 203, 223, 224, 255),
  fc.nat(255),
);
const v4 = fc
  .tuple(
    v4Lead,
    fc.oneof(fc.constantFrom(0, 2, 15, 16, 31, 32, 51, 63, 64, 88, 127, 128, 168, 254), fc.nat(255)),
    fc.nat(255),
    fc.nat(255),
  )
  .map((b) => b.join('.'));
const group = fc.oneof(
  fc.constantFrom(
    0,
    1,
    0x64,
    0xff9b,
    0x100,
    0x2001,
    0x2,
    0x10,
    0x1f,
    0x20,
    0x2f,
    0xdb8,
    0xfbff,
    0xfc00,
    0xfdff,
    0xfe00,
    0xfe7f,
    0xfe80,
    0xfec0,
    0xfeff,
    0xff00,
    0xffff,
  ),
  fc.nat(0xffff),
);
const v6Full = fc.array(group, { minLength: 8, maxLength: 8 });
const v6 = fc.oneof(
  // Full form, hex case varied.
  fc.tuple(v6Full, fc.boolean()).map(([g, upper]) => {
    const text = g.map((n) => n.toString(16)).join(':');
    return upper ? text.toUpperCase() : text;
  }),
  // Compressed: a run of groups replaced by `::`, at the start, middle or end.
  fc.tuple(v6Full, fc.nat(7), fc.integer({ min: 1, max: 8 })).map(([g, at, run]) => {
    const end = Math.min(8, at + run);
    const hex = (part: number[]) => part.map((n) => n.toString(16)).join(':');
    return `${hex(g.slice(0, at))}::${hex(g.slice(end))}`;
  }),
  // Leading zeros written out, IPv4 in the last 32 bits, zones.
  fc.tuple(group, group).map(([a, b]) => `${a.toString(16).padStart(4, '0')}:${b.toString(16)}::1`),
  fc.tuple(v6Full, v4).map(
    ([g, a]) =>
      `${g
        .slice(0, 6)
        .map((n) => n.toString(16))
        .join(':')}:${a}`,
  ),
  v4.map((a) => `::ffff:${a}`),
  v4.map((a) => `0:0:0:0:0:ffff:${a}`),
  v4.map((a) => `64:ff9b::${a}`),
  fc.tuple(v6Full).map(([g]) => `${g.map((n) => n.toString(16)).join(':')}%eth0`),
);

describe('isReserved', () => {
  it('agrees with BlockList.check for IPv4 and IPv6 (property)', () => {
    fc.assert(
      fc.property(fc.oneof(v4, v6), (address) => {
        const family = isIP(address);
        fc.pre(family !== 0);
        const kind = family === 4 ? 'ipv4' : 'ipv6';
        expect(isReserved(address, family as 4 | 6)).toBe(blockList.check(address, kind));
      }),
      { numRuns: 20_000 },
    );
  });

  it('finds reserved addresses at the edges of the blocks', () => {
    for (const address of [
      '10.255.255.255',
      '100.127.0.1',
      '172.31.255.255',
      '198.19.0.1',
      '255.255.255.255',
      '::',
      '::1',
      'fdff::1',
      'FE80::1',
      'ff02::1',
      '2001:db8:ffff::1',
    ]) {
      expect(isReserved(address, isIP(address) as 4 | 6), address).toBe(true);
    }
    for (const address of [
      '11.0.0.0',
      '100.128.0.0',
      '172.32.0.0',
      '198.20.0.0',
      '223.255.255.255',
      '::2',
      'fbff::1',
      '2001:db9::1',
      '2a00::1',
    ]) {
      expect(isReserved(address, isIP(address) as 4 | 6), address).toBe(false);
    }
  });
});
