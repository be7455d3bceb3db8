import { describe, expect, it } from 'vitest';
import { byRotation } from './rotation.ts';

describe('byRotation', () => {
  it('puts the older members of a rotated set first, the live file last', () => {
    const paths = [
      '/logs/nginx-access.log',
      '/logs/nginx-access.log.1.gz',
      '/logs/nginx-access.log.10.gz',
      '/logs/nginx-access.log.2.gz',
      '/logs/apache-access.log',
      '/logs/apache-access.log.1',
    ];
    expect([...paths].sort(byRotation)).toEqual([
      '/logs/apache-access.log.1',
      '/logs/apache-access.log',
      '/logs/nginx-access.log.10.gz',
      '/logs/nginx-access.log.2.gz',
      '/logs/nginx-access.log.1.gz',
      '/logs/nginx-access.log',
    ]);
  });

  it('keeps path order between files of different sets and names without a number', () => {
    expect(['/b.log', '/a.log.gz', '/a.json'].sort(byRotation)).toEqual(['/a.json', '/a.log.gz', '/b.log']);
  });
});
