/**
 * What it costs to move a batch between threads (engine/runtime/workers/): 1000-line batches of realistic
 * combined lines, each way of crossing timed in CPU time of this thread, its two halves apart: what the sender pays
 * (encode, serialise as postMessage does) and what the receiver pays (deserialise, decode), best of R rounds, in
 * microseconds per batch:
 * - raw_clone: raw-line records (`message` and the origin) as the structured clone algorithm copies them (v8
 *   serialize on the sender, deserialize on the receiver; what `postMessage` does);
 * - raw_bytes: the same lines encoded into one UTF-8 buffer with offsets and origins in typed arrays (a transfer
 *   moves the buffer, it is not copied), decoded into records again on the receiver;
 * - parsed_clone: the records parse makes of those lines, structured-cloned;
 * - parsed_json: the same as one JSON text (stringify, clone of one string, parse);
 * - parsed_columns: the same in the compact column encoding (columns.ts), origins as indices into the input batch.
 * Usage: node bench/worker-crossing.ts [--batches N] [--rounds R]
 */
import { deserialize, serialize } from 'node:v8';
import type { OperatorContext } from '../engine/operator.ts';
import { type EtlRecord, ORIGIN, type Origin } from '../engine/record.ts';
import { detachedState, noopMetrics, silentLogger } from '../engine/runtime/noop.ts';
import { decodeBatch, decodePorts, encodeBatch, encodePorts } from '../engine/runtime/workers/codec.ts';
import parseDefinition from '../operators/transforms/parse/index.ts';
import type { ParseOptions } from '../operators/transforms/parse/schema.ts';
import { random } from './_random.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const batches = Number(arg('batches') ?? 200);
const rounds = Number(arg('rounds') ?? 5);
const BATCH = 1000;

const AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
  'curl/8.5.0',
];

function rawBatches(): EtlRecord[][] {
  const rnd = random(3);
  const out: EtlRecord[][] = [];
  let offset = 0;
  let line = 0;
  for (let b = 0; b < batches; b++) {
    const records: EtlRecord[] = [];
    for (let i = 0; i < BATCH; i++) {
      const ip =
        rnd() < 0.1
          ? `2001:db8:${Math.floor(rnd() * 65536).toString(16)}::${Math.floor(rnd() * 65536).toString(16)}`
          : `${Math.floor(rnd() * 223) + 1}.${Math.floor(rnd() * 256)}.${Math.floor(rnd() * 256)}.${Math.floor(rnd() * 256)}`;
      const message =
        `${ip} - - [05/Dec/2026:10:00:${String(i % 60).padStart(2, '0')} +0000] "GET /products/${Math.floor(rnd() * 5000)}?ref=mail&utm_source=news HTTP/1.1" ` +
        `200 ${Math.floor(rnd() * 50000)} "https://www.example.com/search?q=shoes&page=${Math.floor(rnd() * 9)}" "${AGENTS[Math.floor(rnd() * AGENTS.length)]}"`;
      const origin: Origin = { source: 'logs', file: '/var/log/nginx/access.log', offset, line: ++line };
      offset += Buffer.byteLength(message) + 1;
      records.push({ message, [ORIGIN]: origin });
    }
    out.push(records);
  }
  return out;
}

function cpuMicros(): number {
  const { user, system } = process.threadCpuUsage();
  return user + system;
}

function best(run: () => void): number {
  let min = Number.POSITIVE_INFINITY;
  for (let r = 0; r < rounds; r++) {
    const start = cpuMicros();
    run();
    min = Math.min(min, cpuMicros() - start);
  }
  return min / batches;
}

const ctx: OperatorContext = {
  pipeline: 'bench',
  id: 'parsed',
  logger: silentLogger,
  signal: new AbortController().signal,
  dataDir: '.',
  baseDir: '.',
  metrics: noopMetrics,
  readPorts: new Set(['default']),
  requestCheckpoint: () => {},
  ...detachedState,
};

const raw = rawBatches();
const parse = await parseDefinition.create(
  { ...(parseDefinition.examples[0] as ParseOptions), format: 'combined' },
  ctx,
);
const parsed = raw.map((records) => (parse.process(records) as { default: EtlRecord[] }).default);
/** The input records the receiver keeps: output origins are indices into them. */
const parsedInput = parsed[0] as EtlRecord[];
let sink = 0;

const origins = (records: EtlRecord[]) => records.map((r) => r[ORIGIN]);

/** Times the sending half (encode and serialise) and the receiving half (deserialise and decode) apart. */
function halves(batchesIn: EtlRecord[][], send: (records: EtlRecord[]) => Buffer, receive: (bytes: Buffer) => number) {
  let sent: Buffer[] = [];
  const sender = best(() => {
    sent = batchesIn.map(send);
  });
  const receiver = best(() => {
    for (const bytes of sent) sink += receive(bytes);
  });
  return { sender, receiver };
}

const cloneWithOrigins = (records: EtlRecord[]) => serialize({ records, origins: origins(records) });
const receiveClone = (bytes: Buffer) => (deserialize(bytes) as { records: EtlRecord[] }).records.length;
const figures: Record<string, { sender: number; receiver: number }> = {
  raw_clone: halves(raw, cloneWithOrigins, receiveClone),
  // The buffers are transferred (moved, not copied) by postMessage; serialising them here copies them, so this
  // figure is above what a transfer costs.
  raw_bytes: halves(
    raw,
    (records) => serialize(encodeBatch(records)),
    (bytes) => decodeBatch(deserialize(bytes)).length,
  ),
  parsed_clone: halves(parsed, cloneWithOrigins, receiveClone),
  parsed_json: halves(
    parsed,
    (records) => serialize(JSON.stringify(records)),
    (bytes) => (JSON.parse(deserialize(bytes) as string) as EtlRecord[]).length,
  ),
  parsed_columns: halves(
    parsed,
    (records) => serialize(encodePorts({ default: records }, records)),
    (bytes) => (decodePorts(deserialize(bytes), parsedInput) as { default: EtlRecord[] }).default.length,
  ),
};
const parseCost = best(() => {
  for (const records of raw) sink += (parse.process(records) as { default: EtlRecord[] }).default.length;
});
console.log(`crossing: ${batches} batches of ${BATCH} lines, CPU µs per batch of each half, best of ${rounds}`);
for (const [name, { sender, receiver }] of Object.entries(figures)) {
  console.log(
    `crossing_${name}: sender ${sender.toFixed(0)} µs/batch, receiver ${receiver.toFixed(0)} µs/batch, total ${(sender + receiver).toFixed(0)}`,
  );
}
console.log(`crossing_parse_itself: ${parseCost.toFixed(0)} µs/batch (what a worker saves the main thread)`);
if (sink < 0) console.log(sink);
