import { describe, expect, it } from 'vitest';
import { type Readable, sortForReading } from './rotation.ts';

const file = (path: string, mtimeMs: number, seq = 0): Readable => ({ path, mtimeMs, seq });
const order = (files: Readable[]) => {
  sortForReading(files);
  return files.map((f) => f.path);
};

describe('sortForReading', () => {
  it('reads a rotated set by its numbers, whatever the times a checkout gave its files', () => {
    expect(
      order([
        file('/logs/nginx-access.log', 1000),
        file('/logs/nginx-access.log.1.gz', 1003),
        file('/logs/nginx-access.log.10.gz', 1001),
        file('/logs/nginx-access.log.2.gz', 1002),
      ]),
    ).toEqual([
      '/logs/nginx-access.log.10.gz',
      '/logs/nginx-access.log.2.gz',
      '/logs/nginx-access.log.1.gz',
      '/logs/nginx-access.log',
    ]);
  });

  it('orders sets and single files by the oldest time among them, then by path', () => {
    expect(
      order([
        file('/b/access.log', 50),
        file('/a/access.log', 70),
        file('/a/access.log.1', 10),
        file('/c.log', 30),
        file('/d.log', 30),
      ]),
    ).toEqual(['/a/access.log.1', '/a/access.log', '/c.log', '/d.log', '/b/access.log']);
  });

  it('keeps files that held one path in turn in the order they came', () => {
    expect(order([file('/x.log', 5, 2), file('/x.log', 5, 1)]).length).toBe(2);
    const files = [file('/x.log', 5, 2), file('/x.log', 5, 1)];
    sortForReading(files);
    expect(files.map((f) => f.seq)).toEqual([1, 2]);
  });
});
