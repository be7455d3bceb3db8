/**
 * Client addresses as logs write them, read once per record by several operators (validate's `ip` rule,
 * threat_intel): dotted IPv4 by hand, IPv6 by ipaddr.js. IPv4 is accepted only in dotted four-part decimal:
 * ipaddr.js also reads `1.2.3` or `0x7f.1` the way inet_aton does, which no list or log means. An IPv4-mapped
 * IPv6 address (`::ffff:192.0.2.1`) is its IPv4 address.
 */
import ipaddr from 'ipaddr.js';

/** The address `text` as bytes (4 or 16), or undefined when it is not an IP address (a host name, `-`). */
export function addressBytes(text: string): number[] | undefined {
  if (text.includes(':')) {
    const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
    if (!ipaddr.IPv6.isValid(bare)) return undefined;
    const address = ipaddr.IPv6.parse(bare);
    return address.isIPv4MappedAddress() ? address.toIPv4Address().octets : address.toByteArray();
  }
  return dottedQuad(text);
}

/**
 * Dotted four-part decimal IPv4, read by hand: this runs once per record, and ipaddr.js takes a regular
 * expression to refuse the inet_aton forms and then a second to parse (about 1 µs an address, a third of
 * threat_intel's time in bench/threat-intel.ts). Leading zeros are refused as ipaddr.js's four-part check does
 * (`010.0.0.1` is octal to some readers and decimal to others). Agrees with
 * `ipaddr.IPv4.isValidFourPartDecimal` + `ipaddr.IPv4.parse` (property in ip-address.test.ts).
 */
export function dottedQuad(text: string): number[] | undefined {
  const value = ipv4Value(text);
  return value < 0 ? undefined : [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255];
}

/** `dottedQuad`'s address as one number (0 to 2³²−1), or −1 when `text` is no dotted four-part decimal IPv4. */
export function ipv4Value(text: string): number {
  let address = 0;
  let part = 0;
  let digits = 0;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits === 1 && value === 0) return -1;
      value = value * 10 + (c - 48);
      if (++digits > 3 || value > 255) return -1;
    } else if (c === 46 && digits > 0 && part < 3) {
      address = address * 256 + value;
      part++;
      value = 0;
      digits = 0;
    } else return -1;
  }
  if (part !== 3 || digits === 0) return -1;
  return address * 256 + value;
}
