// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these tests are about `${VAR}` interpolation
/** `${VAR}` interpolation: syntax, defaults, secrets, escapes, and that escaping round-trips. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { interpolate } from '../../engine/config/interpolate.ts';

describe('interpolate', () => {
  const env = { HOST: 'db.local', PORT: '5432', EMPTY: '', PW: 's3cret' };

  it('replaces variables, anywhere in the string', () => {
    expect(interpolate('postgres://${HOST}:${PORT}/x', env)).toEqual({
      value: 'postgres://db.local:5432/x',
      secrets: [],
      problems: [],
    });
  });

  it('uses the default when the variable is unset or empty', () => {
    expect(interpolate('${NOPE:-a:b}', env).value).toBe('a:b');
    expect(interpolate('${EMPTY:-fallback}', env).value).toBe('fallback');
    expect(interpolate('${EMPTY}', env).value).toBe('');
    expect(interpolate('${HOST:-other}', env).value).toBe('db.local');
  });

  it('records secret values', () => {
    const result = interpolate('u:${secret:PW}@${HOST} ${secret:NOPE:-dflt}', env);
    expect(result.value).toBe('u:s3cret@db.local dflt');
    expect(result.secrets).toEqual(['s3cret', 'dflt']);
  });

  it('keeps `$${` as a literal `${` and a lone `$` as is', () => {
    expect(interpolate('$${HOST} costs $5 and $$ ${PORT}', env).value).toBe('${HOST} costs $5 and $$ 5432');
  });

  it('reports missing variables, bad names and an unterminated reference', () => {
    expect(interpolate('${NOPE}', env).problems).toEqual([
      { message: 'environment variable `NOPE` is not set', hint: 'set it, or give a default: `${NOPE:-value}`' },
    ]);
    expect(interpolate('${secret:NOPE}', env).problems[0]?.hint).toBe(
      'set it, or give a default: `${secret:NOPE:-value}`',
    );
    expect(interpolate('${1X}', env).problems[0]?.message).toBe('invalid variable reference `${1X}`');
    expect(interpolate('a ${HOST', env).problems[0]?.message).toBe('unterminated `${` in value');
  });

  it('escaping every `${` as `$${` gives the text back unchanged', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('$', '{', '}', 'a', ':', '-', 'A', '_') }), (text) => {
        const escaped = text.split('${').join('$${');
        const result = interpolate(escaped, env);
        expect(result.problems).toEqual([]);
        expect(result.value).toBe(text);
      }),
    );
  });

  it('leaves text without `${` untouched', () => {
    fc.assert(
      fc.property(
        fc.string().filter((s) => !s.includes('${')),
        (text) => {
          expect(interpolate(text, env).value).toBe(text);
        },
      ),
    );
  });
});
