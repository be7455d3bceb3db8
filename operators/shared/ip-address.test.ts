import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import { addressBytes, dottedQuad, ipv4Value } from './ip-address.ts';

describe('addresses', () => {
  it('read dotted IPv4 as ipaddr.js does in its strict four-part form', () => {
    const octet = fc.oneof(
      fc.integer({ min: 0, max: 300 }).map(String),
      fc.constantFrom('', '00', '01', '010', 'x', '1e1'),
    );
    const text = fc.oneof(
      fc.array(octet, { minLength: 1, maxLength: 5 }).map((parts) => parts.join('.')),
      fc.string({ unit: fc.constantFrom('0', '1', '2', '5', '9', '.', ' '), maxLength: 16 }),
    );
    fc.assert(
      fc.property(text, (t) => {
        const want = ipaddr.IPv4.isValidFourPartDecimal(t) ? ipaddr.IPv4.parse(t).octets : undefined;
        expect(addressBytes(t)).toEqual(want);
        expect(dottedQuad(t)).toEqual(want);
        expect(ipv4Value(t)).toBe(want ? want.reduce((value, byte) => value * 256 + byte, 0) : -1);
      }),
      { numRuns: 2000 },
    );
  });

  it('reads dotted IPv4, IPv6, IPv4-mapped IPv6 and bracketed IPv6, nothing else', () => {
    expect(addressBytes('192.0.2.1')).toEqual([192, 0, 2, 1]);
    expect(addressBytes('::ffff:192.0.2.1')).toEqual([192, 0, 2, 1]);
    expect(addressBytes('[2001:db8::1]')?.length).toBe(16);
    expect(addressBytes('2001:db8::1')?.slice(0, 4)).toEqual([0x20, 0x01, 0x0d, 0xb8]);
    for (const bad of ['1.2.3', '0x7f.0.0.1', 'example.com', '-', '', '1.2.3.256', '2001:db8::g']) {
      expect(addressBytes(bad), bad).toBeUndefined();
    }
  });
});
