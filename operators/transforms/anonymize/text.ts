/**
 * Scrubbing personal data out of free text (request lines, paths, query strings, referrers, raw lines):
 * query parameters by name, e-mail addresses, IP addresses, card numbers (Luhn-checked) and phone numbers.
 * Each found value is replaced by a marker (`[email]`, `[card]`, …) or, for addresses, as the address rule says.
 * Percent-encoded forms are recognised where logs write them (`%40` for `@`, `%2B` for `+`).
 */
import { type AddressRule, anonymizeAddress, isAddress } from './addresses.ts';

export interface TextRule {
  /** Whether a query parameter's value must go, by the parameter's name. */
  readonly sensitiveParam: (name: string) => boolean;
  readonly emails: boolean;
  readonly phones: boolean;
  readonly cards: boolean;
  /** What becomes of addresses found in the text; undefined leaves them. */
  readonly addresses: AddressRule | undefined;
}

export const REDACTED = '[redacted]';

// name=value after a start of text, `?`, `&`, `;` (`;jsessionid=`), or a blank or quote (raw lines, JSON).
const PARAM = /(^|[?&;\s"'])([^=&?;\s"'#]{1,100})=([^&;\s"'#]*)/g;
const EMAIL = /[A-Za-z0-9._%+-]{1,64}(?:@|%40)[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}/gi;
// Candidates only: each is then parsed (ipaddr.js), so a version string or a time is left alone.
const IPV4 = /(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.]*\d)/g;
const IPV6 =
  /(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|:|\d{1,3}(?:\.\d{1,3}){3})(?![0-9A-Fa-f:])/g;
// 13 to 19 digits, grouped by blanks or dashes as people type them.
const CARD = /(?<![\dA-Za-z])\d(?:(?: |-|%20)?\d){12,18}(?![\dA-Za-z])/g;
/*
 * An international number (`+`, `%2B` or `00` first) of 8 to 15 digits, or a national one written in groups
 * (`06 12 34 56 78`, `(555) 123-4567`): at least two separators and 9 to 15 digits. A bare run of digits is an
 * id, not a phone number, and is left alone.
 */
const PHONE_INTL = /(?<![\dA-Za-z%])(?:\+|%2B|00)\d(?:(?:[ .-]|%20)?\(?\d\)?){7,14}(?![\dA-Za-z])/gi;
// `+` separates too: form-encoded queries write blanks as `+`.
const PHONE_GROUPED = /(?<![\dA-Za-z.])\(?\d{2,4}\)?(?:(?:[ .+-]|%20)\d{2,4}){2,5}(?![\dA-Za-z.])/g;

// Cheap tests run first, so that the costly patterns above only see text that may hold what they look for.
const IPV4_HINT = /\d\.\d{1,3}\.\d{1,3}\.\d/;
const IPV6_HINT = /::|[0-9A-Fa-f]:[0-9A-Fa-f]{1,4}:/;
const DIGITS_13 = /\d(?:(?: |-|%20)?\d){12}/;
const PHONE_HINT = /(?:\+|%2B|00)\d{3}|\d{2}\)?(?:[ .+-]|%20)\(?\d{2,4}(?:[ .+-]|%20)\d{2}/i;

/**
 * Matches wherever any rule above might: text it does not match is returned at once (most paths and request
 * lines), after one scan instead of one per rule. Each alternative is implied by one rule's pattern.
 */
const ANY_HINT =
  /[=@]|%40|%2B|\+\d|\d\.\d{1,3}\.\d|::|[0-9A-Fa-f]:[0-9A-Fa-f]{1,4}:|\d{8}|\d(?:[ +-]|%20)\d|\d{2}\)?(?:[ .+-]|%20)\(?\d{2}|\d\)|\(\d/i;

export function scrubText(text: string, rule: TextRule): string {
  return ANY_HINT.test(text) ? scrubAll(text, rule) : text;
}

/** Every rule, without the first test (exported for the test that holds `ANY_HINT` to them). */
export function scrubAll(text: string, rule: TextRule): string {
  let out = text;
  if (out.includes('=')) out = scrubParams(out, rule);
  if (rule.emails && (out.includes('@') || out.includes('%40'))) out = out.replace(EMAIL, '[email]');
  const addresses = rule.addresses;
  if (addresses !== undefined && addresses.mode !== 'keep') {
    const replace = (match: string) => (isAddress(match) ? (anonymizeAddress(match, addresses) ?? '[ip]') : match);
    if (IPV4_HINT.test(out)) out = out.replace(IPV4, replace);
    if (IPV6_HINT.test(out)) out = out.replace(IPV6, replace);
  }
  if (rule.cards && DIGITS_13.test(out)) out = out.replace(CARD, (match) => (luhn(match) ? '[card]' : match));
  if (rule.phones && PHONE_HINT.test(out)) {
    out = out.replace(PHONE_INTL, '[phone]').replace(PHONE_GROUPED, phoneIfEnoughDigits);
  }
  return out;
}

/** `name=value` pairs with a sensitive name get `[redacted]` for value; the text is rebuilt only when one does. */
function scrubParams(text: string, rule: TextRule): string {
  let out = '';
  let from = 0;
  PARAM.lastIndex = 0;
  for (let m = PARAM.exec(text); m !== null; m = PARAM.exec(text)) {
    const name = m[2] as string;
    if (!rule.sensitiveParam(decodeName(name))) continue;
    const valueAt = m.index + (m[1] as string).length + name.length + 1;
    out += `${text.slice(from, valueAt)}${REDACTED}`;
    from = valueAt + (m[3] as string).length;
  }
  return from === 0 ? text : out + text.slice(from);
}

function phoneIfEnoughDigits(match: string): string {
  const digits = match.replace(/%20/g, '').replace(/\D/g, '').length;
  return digits >= 9 && digits <= 15 ? '[phone]' : match;
}

function decodeName(name: string): string {
  if (!name.includes('%')) return name;
  try {
    return decodeURIComponent(name);
  } catch {
    return name;
  }
}

/**
 * The Luhn check digit test of card numbers (ISO/IEC 7812). Written here rather than taken from a package:
 * it is ten lines, and the packages that offer it validate whole card formats we do not need.
 */
export function luhn(text: string): boolean {
  const digits = text.replace(/%20/g, '').replace(/\D/g, '');
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return digits.length >= 13 && sum % 10 === 0;
}
