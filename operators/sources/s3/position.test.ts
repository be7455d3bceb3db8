/** The s3 source's checkpoint ledger: what the watermark passes, what stays listed past it, what it refuses. */
import { describe, expect, it } from 'vitest';
import { compareKeys, Ledger, type ListedObject } from './position.ts';

const NOW = Date.parse('2026-12-05T13:00:00Z');
const object = (key: string, ageSeconds: number): ListedObject => ({
  key,
  etag: `"${key}"`,
  size: 1,
  lastModified: NOW - ageSeconds * 1000,
});

describe('s3 source ledger', () => {
  it('moves the watermark over settled keys read, and stops at the first unread or recent one', () => {
    const ledger = new Ledger('b', 'p/');
    const listed = [object('p/a', 600), object('p/b', 600), object('p/c', 10), object('p/d', 600)];
    for (const key of ['p/a', 'p/b', 'p/c', 'p/d']) ledger.complete(key);
    ledger.advance(listed, NOW - 300_000);
    // p/c is younger than 300 s: an object may still appear before it, so the watermark waits there.
    expect(ledger.position()).toMatchObject({ watermark: 'p/b', done: ['p/c', 'p/d'] });
    ledger.advance(listed, NOW + 300_000);
    expect(ledger.position()).toMatchObject({ watermark: 'p/d', done: [] });
  });

  it('does not pass a key not read yet, however old', () => {
    const ledger = new Ledger('b', '');
    ledger.complete('b');
    ledger.advance([object('a', 600), object('b', 600)], NOW);
    expect(ledger.position()).toMatchObject({ watermark: null, done: ['b'] });
    expect(ledger.isDone('a')).toBe(false);
  });

  it('forgets read keys that were deleted once the watermark passes them', () => {
    const ledger = new Ledger('b', '');
    for (const key of ['a', 'b', 'c']) ledger.complete(key);
    // b was deleted: the listing no longer has it.
    ledger.advance([object('a', 600), object('c', 600)], NOW);
    expect(ledger.position()).toMatchObject({ watermark: 'c', done: [] });
    expect(ledger.isDone('b')).toBe(true);
  });

  it('orders keys by their UTF-8 bytes, as S3 lists them', () => {
    // U+FF5E sorts before U+1F600 in UTF-8 but after it in UTF-16 code units.
    expect(compareKeys('\uFF5E', '\u{1F600}')).toBeLessThan(0);
    expect('\uFF5E' < '\u{1F600}').toBe(false);
  });

  it('restores its own position, and refuses one of another bucket or prefix', () => {
    const ledger = new Ledger('b', 'p/');
    ledger.complete('p/x');
    ledger.partial = { key: 'p/y', etag: '"y"', gzip: true, offset: 10, line: 2, skipping: false };
    const position = JSON.parse(JSON.stringify(ledger.position()));
    expect(Ledger.restore('b', 'p/', position)?.position()).toEqual(ledger.position());
    expect(Ledger.restore('other', 'p/', position)).toBeUndefined();
    expect(Ledger.restore('b', 'q/', position)).toBeUndefined();
    expect(Ledger.restore('b', 'p/', { bucket: 'b' })).toBeUndefined();
  });
});
