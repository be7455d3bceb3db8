/**
 * Keeps secrets out of anything printed: known secret values become `***`, and so does the password of
 * any URL (`scheme://user:pw@host` → `scheme://user:***@host`), known or not.
 */

export type Redactor = (text: string) => string;

export const REDACTED = '***';

// The userinfo password stops at the first `@`, `/`, `?`, `#` or whitespace (RFC 3986 percent-encodes these).
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:@/?#]*:)[^\s@/?#]+@/gi;
const REGEXP_SPECIALS = /[.*+?^${}()|[\]\\/-]/g;

export function redactUrlPasswords(text: string): string {
  return text.replace(URL_PASSWORD, `$1${REDACTED}@`);
}

/**
 * Builds the redactor once (one regex for every secret), so each line costs one or two scans. A secret is
 * also matched in the forms it takes once embedded in JSON or in a URL.
 */
export function createRedactor(secrets: readonly string[] = []): Redactor {
  const variants = new Set<string>();
  for (const secret of secrets) {
    if (secret.length === 0) continue;
    variants.add(secret);
    variants.add(JSON.stringify(secret).slice(1, -1));
    variants.add(encodeURIComponent(secret));
  }
  if (variants.size === 0) return redactUrlPasswords;
  // Longest first, so a secret that contains another is replaced whole.
  const alternatives = [...variants].sort((a, b) => b.length - a.length).map(escapeRegExp);
  const pattern = new RegExp(alternatives.join('|'), 'g');
  return (text) => redactUrlPasswords(text.replace(pattern, REDACTED));
}

function escapeRegExp(text: string): string {
  return text.replace(REGEXP_SPECIALS, '\\$&');
}

/** One-off redaction; build a redactor with `createRedactor` for repeated use. */
export function redact(text: string, secrets: readonly string[]): string {
  return createRedactor(secrets)(text);
}
