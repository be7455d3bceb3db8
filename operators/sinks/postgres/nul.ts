/**
 * How U+0000 is stored. PostgreSQL's text and jsonb cannot hold it, but the parser keeps it (a TLS
 * handshake sent to an HTTP port logs as `\x16\x03\x01\x00…`). The sink stores it as the four characters
 * `\x00`. So that this is lossless, a backslash that would read as such an escape (one followed by `x00` or
 * `x5c`) is stored as `\x5c`; every other backslash stays as it is, so ordinary values (a Windows path,
 * `\"` in a user agent) are stored unchanged. `restoreNul` reads the original back: `\x00` → U+0000 and
 * `\x5c` → `\`, left to right; every other character is itself.
 */

const STORED_ESCAPES = /\0|\\(?=x00|x5c)/g;

/** `text` as stored: U+0000 as `\x00`, a backslash followed by `x00` or `x5c` as `\x5c`. */
export function storeNul(text: string): string {
  return text.replace(STORED_ESCAPES, (m) => (m === '\0' ? '\\x00' : '\\x5c'));
}

const RESTORED = /\\x(00|5c)/g;

/** The inverse of `storeNul`: the text as it was before it was stored. */
export function restoreNul(stored: string): string {
  return stored.replace(RESTORED, (_m, hex: string) => (hex === '00' ? '\0' : '\\'));
}

/**
 * JSON text (as JSON.stringify writes it) whose strings, keys included, are as `storeNul` makes them. Each
 * escape sequence is matched whole, so that `\\` (a backslash) is never read as the start of another.
 */
const JSON_ESCAPES = /\\(?:(u0000)|(\\)(?=x00|x5c)|[\s\S])/g;

export function storeNulJson(json: string): string {
  return json.replace(JSON_ESCAPES, (m, nul?: string, backslash?: string) =>
    nul ? '\\\\x00' : backslash ? '\\\\x5c' : m,
  );
}

/** In JSON text, a stored `\x00` or `\x5c` is `\\x00` or `\\x5c`: the escape `\\` followed by `x00` or `x5c`. */
const STORED_JSON_ESCAPES = /\\(?:\\(x00|x5c)|[\s\S])/g;

/** The inverse of `storeNulJson`, for JSON text such as `jsonb::text` or JSON.stringify of a stored value. */
export function restoreNulJson(json: string): string {
  return json.replace(STORED_JSON_ESCAPES, (m, tail?: string) =>
    tail === 'x00' ? '\\u0000' : tail === 'x5c' ? '\\\\' : m,
  );
}
