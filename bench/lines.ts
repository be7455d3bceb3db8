/**
 * Line splitting alone (operators/shared/line-reader/lines.ts `takeLines`): a buffer of generated lines split into
 * records again and again, in memory, so the cost per line is measured without I/O or the runtime.
 * - ascii: combined lines, ASCII only; utf8: the same with a non-ASCII user agent (valid UTF-8);
 *   invalid: every line carries one byte that is not UTF-8 (Latin-1 `é`).
 * Figures are lines per second of main-thread CPU time, best of R rounds.
 * Usage: node bench/lines.ts [--lines N] [--rounds R]
 */
import { Batch, newCursor, takeLines } from '../operators/shared/line-reader/lines.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const lines = Number(arg('lines') ?? 200_000);
const rounds = Number(arg('rounds') ?? 5);

const HEAD = '203.0.113.7 - - [10/Oct/2000:13:55:36 -0700] "GET /index.html?id=';
const TAIL = ' HTTP/1.1" 200 2326 "http://www.example.com/start.html" "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0';

function corpus(kind: string): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < lines; i++) {
    const ua = kind === 'ascii' ? '' : kind === 'utf8' ? ' Überschall' : ' \xe9t\xe9';
    parts.push(Buffer.from(`${HEAD}${i}${TAIL}${ua}"\n`, kind === 'invalid' ? 'latin1' : 'utf8'));
  }
  return Buffer.concat(parts);
}

function split(buf: Buffer): number {
  const cursor = newCursor('bench', 'bench.log');
  const batch = new Batch(1024);
  let n = 0;
  let pos = 0;
  while (pos < buf.length) {
    pos = takeLines(cursor, buf, pos, buf.length, batch, 65536, true);
    n += batch.take().records.length;
  }
  return n;
}

for (const kind of ['ascii', 'utf8', 'invalid']) {
  const buf = corpus(kind);
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < rounds; r++) {
    // CPU time of this thread, not wall time: on a shared machine, time spent descheduled is not the splitter's.
    const t = process.threadCpuUsage();
    const n = split(buf);
    const used = process.threadCpuUsage(t);
    const s = (used.user + used.system) / 1e6;
    if (n !== lines) throw new Error(`${kind}: ${n} records of ${lines} lines`);
    best = Math.min(best, s);
  }
  console.log(`lines_${kind}_per_sec: ${Math.round(lines / best)} lines per CPU second (best of ${rounds})`);
}
