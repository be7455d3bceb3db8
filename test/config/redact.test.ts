/** Secrets and URL passwords never reach the terminal. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { redact } from '../../engine/redact.ts';

describe('redact', () => {
  it('masks every secret value', () => {
    expect(redact('token abc123 and again abc123', ['abc123'])).toBe('token *** and again ***');
  });

  it('masks the longer of overlapping secrets whole', () => {
    expect(redact('key=abcdef', ['abc', 'abcdef'])).toBe('key=***');
  });

  it('ignores empty secrets', () => {
    expect(redact('nothing to hide', [''])).toBe('nothing to hide');
  });

  it('masks passwords in URLs, keeping user and host', () => {
    expect(redact('postgres://etl:hunter2@127.0.0.1:5432/db', [])).toBe('postgres://etl:***@127.0.0.1:5432/db');
    expect(redact('see redis://:pw@127.0.0.1:6379 and http://example.com:80/x', [])).toBe(
      'see redis://:***@127.0.0.1:6379 and http://example.com:80/x',
    );
    expect(redact('postgres://etl@127.0.0.1/db', [])).toBe('postgres://etl@127.0.0.1/db');
  });

  it('never lets a secret through, wherever it sits', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.string({ minLength: 1 }).filter((s) => !s.includes('*')),
        fc.string(),
        (before, secret, after) => {
          expect(redact(`${before}${secret}${after}`, [secret])).not.toContain(secret);
        },
      ),
    );
  });
});
