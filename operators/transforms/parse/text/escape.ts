/**
 * Escapes values exactly as the servers write them; the formatter (the parser's inverse) uses this.
 * - Apache (ap_escape_logitem): `"` and `\` get a backslash, \b \n \r \t \v their C escapes, other
 *   control bytes and every byte ≥ 0x7F `\xhh` (lowercase).
 * - nginx default: `"`, `\`, bytes < 0x20 and ≥ 0x7F as `\xHH` (uppercase).
 * - nginx `escape=json`: JSON string escaping; UTF-8 is written as is.
 */
import type { Dialect, EscapeMode } from '../formats/fields.ts';

const encoder = new TextEncoder();
const HEX_LOWER = '0123456789abcdef';
const HEX_UPPER = '0123456789ABCDEF';

function needsEscape(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c >= 0x7f || c === 34 || c === 92) return true;
  }
  return false;
}

function hexBytes(value: string, hex: string): string {
  let out = '';
  for (const b of encoder.encode(value)) out += '\\x' + hex[b >> 4] + hex[b & 15];
  return out;
}

export function escapeApache(value: string): string {
  if (!needsEscape(value)) return value;
  let out = '';
  for (const ch of value) {
    const c = ch.charCodeAt(0);
    if (c === 34 || c === 92) out += '\\' + ch;
    else if (c === 8) out += '\\b';
    else if (c === 10) out += '\\n';
    else if (c === 13) out += '\\r';
    else if (c === 9) out += '\\t';
    else if (c === 11) out += '\\v';
    else if (c < 0x20 || c >= 0x7f) out += hexBytes(ch, HEX_LOWER);
    else out += ch;
  }
  return out;
}

export function escapeNginx(value: string): string {
  if (!needsEscape(value)) return value;
  let out = '';
  for (const ch of value) {
    const c = ch.charCodeAt(0);
    out += c < 0x20 || c >= 0x7f || c === 34 || c === 92 ? hexBytes(ch, HEX_UPPER) : ch;
  }
  return out;
}

export function escapeJson(value: string): string {
  return JSON.stringify(value).slice(1, -1);
}

export function escaperFor(dialect: Dialect, mode: EscapeMode): (value: string) => string {
  if (mode === 'json') return escapeJson;
  if (mode === 'none') return (value) => value;
  return dialect === 'apache' ? escapeApache : escapeNginx;
}
