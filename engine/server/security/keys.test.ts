/** Key format, hashing and roles; pipeline names. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { generateKey, hashSecret, parseKey, roleAllows, verifySecret } from './keys.ts';
import { pipelineNameProblem, pipelinePath } from './pipeline-name.ts';
import { redactText } from './redact-text.ts';

describe('keys', () => {
  it('stores only a salted scrypt hash that verifies the secret and nothing else', async () => {
    const made = await generateKey();
    const parsed = parseKey(made.key);
    if (!parsed) throw new Error(`not a key: ${made.key}`);
    expect(parsed.id).toBe(made.id);
    expect(made.hash).toMatch(/^scrypt\$15\$8\$1\$/);
    expect(made.hash).not.toContain(parsed.secret);
    expect(await verifySecret(parsed.secret, made.hash)).toBe(true);
    const other = parsed.secret.endsWith('A') ? 'B' : 'A';
    expect(await verifySecret(`${parsed.secret.slice(0, -1)}${other}`, made.hash)).toBe(false);
    expect(await hashSecret('same')).not.toBe(await hashSecret('same'));
    expect(await verifySecret('anything', 'plain-text')).toBe(false);
    expect(await verifySecret('anything', 'scrypt$40$8$1$AAAA$AAAA')).toBe(false);
  });

  it('parses only well-formed keys', () => {
    for (const bad of [
      '',
      'etl_',
      `etl_XYZ_${'A'.repeat(43)}`,
      `etl_${'0'.repeat(16)}_short`,
      `Bearer etl_${'0'.repeat(16)}_${'A'.repeat(43)}`,
    ]) {
      expect(parseKey(bad), bad).toBeUndefined();
    }
  });

  it('orders roles admin ⊇ operator ⊇ viewer', () => {
    expect(roleAllows('admin', 'operator')).toBe(true);
    expect(roleAllows('operator', 'viewer')).toBe(true);
    expect(roleAllows('viewer', 'operator')).toBe(false);
    expect(roleAllows('operator', 'admin')).toBe(false);
  });

  it('masks keys in text', async () => {
    const { key } = await generateKey();
    expect(redactText(`got ${key}, and postgres://u:pw@h/db`)).toBe('got etl_***, and postgres://u:***@h/db');
  });
});

describe('pipeline names', () => {
  it('refuses names that are not plain file names', () => {
    for (const bad of ['', '..', '.', '../x', 'a/b', 'a\\b', '.hidden', '-rf', 'a\0b', 'x'.repeat(129), 'é', ' a']) {
      expect(pipelineNameProblem(bad), JSON.stringify(bad)).toBeDefined();
      expect(() => pipelinePath('/srv/pipelines', bad, '.yaml')).toThrow(RangeError);
    }
    expect(pipelineNameProblem('web-logs_2')).toBeUndefined();
    expect(pipelinePath('/srv/pipelines', 'web', '.yaml')).toBe('/srv/pipelines/web.yaml');
  });

  it('never leads out of the directory, whatever the string', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (name) => {
        let path: string;
        try {
          path = pipelinePath('/srv/pipelines', name, '.yaml');
        } catch {
          return;
        }
        expect(path.startsWith('/srv/pipelines/')).toBe(true);
        expect(path.slice('/srv/pipelines/'.length)).not.toMatch(/[/\\]/);
      }),
    );
  });
});
