/**
 * Regenerates the sample logs under examples/logs/ (committed, so the quickstart needs nothing else):
 * three servers in three formats over two days, one rotated and gzipped, with a few broken lines.
 * Usage: node examples/make-sample-logs.ts
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { createLineMaker, type LogFormat } from '../operators/sources/generator/lines.ts';

const here = join(dirname(fileURLToPath(import.meta.url)), 'logs');

function lines(format: LogFormat, seed: number, count: number, start: string): string {
  // About two days of traffic at this count.
  const maker = createLineMaker({
    format,
    seed,
    start_time: start,
    requests_per_second: count / 172_800,
    malformed_ratio: 0.01,
  });
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(maker.next());
  return `${out.join('\n')}\n`;
}

writeFileSync(join(here, 'apache-access.log'), lines('apache_combined', 11, 4000, '2026-11-26T00:00:00Z'));
writeFileSync(join(here, 'nginx-access.log'), lines('nginx_combined_request_time', 12, 4000, '2026-11-26T00:00:00Z'));
writeFileSync(
  join(here, 'nginx-access.log.1.gz'),
  gzipSync(lines('nginx_combined_request_time', 13, 3000, '2026-11-24T00:00:00Z')),
);
writeFileSync(join(here, 'api-access.json.log'), lines('nginx_json', 14, 3000, '2026-11-26T00:00:00Z'));
