/** Writes generated access-log lines to a file, in ~1 MiB writes: for tests, benchmarks and samples. */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { createLineMaker, type LineMakerOptions } from './lines.ts';

export async function writeLogFile(path: string, lines: number, options: LineMakerOptions = {}): Promise<void> {
  const maker = createLineMaker(options);
  const out = createWriteStream(path);
  let chunk = '';
  for (let i = 0; i < lines; i++) {
    chunk += `${maker.next()}\n`;
    if (chunk.length > 1 << 20) {
      if (!out.write(chunk)) await once(out, 'drain');
      chunk = '';
    }
  }
  out.end(chunk);
  await once(out, 'finish');
}
