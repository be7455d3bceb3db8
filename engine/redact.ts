/**
 * Masks secrets in text before it is printed or logged: every value that came from a `${secret:…}`
 * variable, and the password part of URLs (`postgres://user:pw@host` → `postgres://user:***@host`).
 */
export const MASK = '***';

// scheme://user:password@ — the password is whatever lies between the first `:` of the userinfo and `@`.
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:@/?#]*:)([^\s@/?#]+)@/gi;

export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  if (secrets.length > 0) {
    // Longest first, so a secret that contains another is masked whole.
    const ordered = [...new Set(secrets)].filter((s) => s.length > 0).sort((a, b) => b.length - a.length);
    for (const secret of ordered) out = out.split(secret).join(MASK);
  }
  return out.replace(URL_PASSWORD, `$1${MASK}@`);
}
