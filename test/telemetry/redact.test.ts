import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRedactor, redact, redactUrlPasswords } from '../../engine/telemetry/redact.ts';

describe('redactUrlPasswords', () => {
  it('masks the password of any URL and keeps the rest', () => {
    expect(redactUrlPasswords('postgres://etl:pw@127.0.0.1:5432/test?sslmode=disable')).toBe(
      'postgres://etl:***@127.0.0.1:5432/test?sslmode=disable',
    );
    expect(redactUrlPasswords('a redis://:pw@h:6379 and amqp+ssl://u:p%40ss@h/v')).toBe(
      'a redis://:***@h:6379 and amqp+ssl://u:***@h/v',
    );
    expect(redactUrlPasswords('http://user@host/x http://host:8080/a@b')).toBe(
      'http://user@host/x http://host:8080/a@b',
    );
  });
});

describe('createRedactor', () => {
  it('replaces the longest secret first, and the JSON and URL-encoded forms', () => {
    const r = createRedactor(['abc', 'abcdef', 'a"b', 'p@ss word']);
    expect(r('x abcdef y abc')).toBe('x *** y ***');
    expect(r(JSON.stringify({ v: 'a"b' }))).toBe('{"v":"***"}');
    expect(r('mysql://u:p%40ss%20word@h')).toBe('mysql://u:***@h');
    expect(r('q=p%40ss%20word')).toBe('q=***');
  });

  it('treats regular expression characters in secrets literally', () => {
    const r = createRedactor(['a.c', '(x)+', '']);
    expect(r('abc a.c (x)+ xx')).toBe('abc *** *** xx');
  });

  it('never leaves a secret in the output', () => {
    const secret = fc.string({ minLength: 4, maxLength: 12 }).filter((s) => !s.includes('*'));
    fc.assert(
      fc.property(secret, fc.array(fc.string({ maxLength: 8 }), { maxLength: 6 }), (s, pieces) => {
        const text = pieces.join(s);
        const out = createRedactor([s])(text);
        expect(out).not.toContain(s);
        if (pieces.length > 1) expect(out).toContain('***');
      }),
    );
  });

  it('changes nothing without secrets or URLs', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        fc.pre(!text.includes('://'));
        expect(createRedactor([])(text)).toBe(text);
        expect(redact(text, [])).toBe(text);
      }),
    );
  });
});
